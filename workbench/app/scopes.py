"""Name scopes of a model's nodes as collapsible blocks, so a 2,000-node graph opens as a few dozen boxes.

Exporters name nodes by the module that made them (``/encoder/layers.3/attn/q/MatMul``); the scope
(everything before the last segment) is the structure a user thinks in. ``ScopeTree`` holds that tree;
``ScopeTree.view(expanded)`` turns the graph into *units* — single nodes, or one block per collapsed
scope — with the edges between them, which ``layout.layered_layout`` lays out like any graph. Qt-free
(the GUI's graph panel draws it). Hand-written: no layout library here groups nodes by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

GROUP_MIN_NODES = 200  # smaller graphs are shown node by node
TARGET_UNITS = 48  # open with at most about this many boxes
GROUP_PREFIX = "\x00scope:"  # unit names of blocks (never a node name: ONNX names are printable)


def scope_of(name: str, sep: str) -> tuple[str, ...]:
    """The scope path of a node name (every segment but the last); () when it has none."""
    parts = [p for p in name.split(sep) if p]
    return tuple(parts[:-1])


def pick_separator(names: Sequence[str]) -> str | None:
    """'/' when most names are scoped with it (PyTorch, TF exports), else '.', else None (no scopes)."""
    if not names:
        return None
    for sep in ("/", "."):
        if sum(1 for n in names if sep in n.strip(sep)) >= 0.6 * len(names):
            return sep
    return None


def word_tokens(segment: str) -> list[str]:
    """A segment split at '_' with a number kept on the word before it: ``model_1_block3_conv`` ->
    [``model_1``, ``block3``, ``conv``], ``conv2d_15`` -> [``conv2d_15``] (Keras numbers layers that way)."""
    out: list[str] = []
    for t in segment.split("_"):
        if out and (not t or t.isdigit() or not out[-1]):
            out[-1] += "_" + t
        else:
            out.append(t)
    return out


# an '_' word becomes a scope only when its nodes sit together in the graph: at most this many times as many
# positions (in topological order) as it has members, so `block3_…` groups and `batch_normalization_…`, spread
# over the whole model, does not
WORD_SPAN = 2.0
WORD_MIN_NODES = 3


def name_scopes(names: Sequence[str], sep: str | None) -> dict[str, tuple[str, ...]]:
    """Each name's scope path: the segments before the last (split at ``sep``), with TF/Keras-style words
    joined by '_' (``block3_conv1``) opened into scopes of their own where the same word starts several names
    that sit together in the graph (``names`` in topological order). Hand-written: exporters' naming, no library."""
    cand: dict[str, list[tuple[str, bool]]] = {}  # name -> [(scope, from a word)] outermost first
    for n in names:
        segs = [p for p in n.split(sep) if p] if sep else [n]
        path: list[tuple[str, bool]] = []
        for k, seg in enumerate(segs):
            words = word_tokens(seg)
            # a word level is named by the words so far (model_1_block3), so dropping an outer one never merges
            # two scopes that only share an inner word
            path += [("_".join(words[:j]), True) for j in range(1, len(words))]
            if k < len(segs) - 1:
                path.append((seg, False))
        cand[n] = path
    where: dict[tuple[str, ...], list[int]] = {}
    for i, n in enumerate(names):
        path = tuple(seg for seg, _ in cand[n])
        for k, (_, word) in enumerate(cand[n]):
            if word:
                where.setdefault(path[:k + 1], []).append(i)

    def helps(prefix: tuple[str, ...]) -> bool:
        idx = where[prefix]
        return len(idx) >= WORD_MIN_NODES and (idx[-1] - idx[0] + 1) <= WORD_SPAN * len(idx)

    out = {}
    for n in names:
        path = tuple(seg for seg, _ in cand[n])
        out[n] = tuple(seg for k, (seg, word) in enumerate(cand[n]) if not word or helps(path[:k + 1]))
    return out


CHUNK = " … "  # in the name of a run-of-siblings block ("conv2d_1 … re_lu_10"); never in an exporter's segment


def chunk_wide_scopes(names: Sequence[str], scope: dict[str, tuple[str, ...]], sep: str | None,
                      limit: int = TARGET_UNITS) -> dict[str, tuple[str, ...]]:
    """Scopes with more than ``limit`` children (a Keras model's flat ``conv2d_15``, ``re_lu_15``… or one
    ``model`` scope holding every layer) get their children split into runs that follow each other in the graph,
    each a block named by its first and last member, so even an unscoped 2,000-node model opens as a few dozen
    blocks of consecutive layers."""
    scope = dict(scope)
    depth = 0
    while any(len(p) >= depth for p in scope.values()):
        kids: dict[tuple[str, ...], list] = {}  # parent scope -> its children in graph order
        for n in names:
            p = scope[n]
            if len(p) < depth:
                continue
            key = p[depth] if len(p) > depth else ("node", n)
            lst = kids.setdefault(p[:depth], [])
            if key not in lst[-1:] and key not in lst:
                lst.append(key)
        for parent, children in kids.items():
            if len(children) <= limit:
                continue
            size = -(-len(children) // max(2, limit // 2))
            label = {}
            for k in range(0, len(children), size):
                run = children[k:k + size]
                name = f"{_child_label(run[0], parent, sep)}{CHUNK}{_child_label(run[-1], parent, sep)}"
                for c in run:
                    label[c] = name
            for n in names:
                p = scope[n]
                if len(p) >= depth and p[:depth] == parent:
                    key = p[depth] if len(p) > depth else ("node", n)
                    scope[n] = p[:depth] + (label[key],) + p[depth:]
        depth += 1
    return scope


def _child_label(child, parent: tuple[str, ...], sep: str | None) -> str:
    if isinstance(child, tuple):  # a node: its own segment
        name = child[1]
        return ([p for p in name.split(sep) if p] or [name])[-1] if sep else name
    if parent and child.startswith(parent[-1] + "_"):
        return child[len(parent[-1]) + 1:]
    return child


def group_id(path: tuple[str, ...]) -> str:
    return GROUP_PREFIX + "/".join(path)


def is_group(unit: str) -> bool:
    return unit.startswith(GROUP_PREFIX)


@dataclass
class ScopeView:
    """What the canvas shows for one set of expanded scopes.

    ``units``: (unit name, depth) in topological order, for ``layered_layout``; a unit is a node name or
    ``group_id(path)``. ``members[i]``: the node names in unit ``i``. ``edges``: (unit, unit) names.
    """

    units: list[tuple[str, int]]
    members: list[list[str]]
    paths: list[tuple[str, ...] | None]  # the scope of a block, None for a node
    edges: list[tuple[str, str]]
    unit_of: dict[str, int] = field(default_factory=dict)  # node name -> index of the unit drawing it

    @property
    def names(self) -> list[str]:
        return [u for u, _ in self.units]

    def label(self, i: int) -> str:
        """A block's own scope segment ("layers.3"; "block3" for the word scope model_1_block3 inside model_1);
        a node's name."""
        p = self.paths[i]
        if not p:
            return self.units[i][0]
        if len(p) > 1 and p[-1].startswith(p[-2] + "_"):
            return p[-1][len(p[-2]) + 1:]
        return p[-1]


class ScopeTree:
    """The scope tree of a graph: ``nodes`` ((name, op) in topological order), ``edges`` (name pairs)."""

    def __init__(self, nodes: Sequence[str], edges: Sequence[tuple[str, str]], sep: str | None = None):
        self.nodes = list(nodes)
        self.order = {n: i for i, n in enumerate(self.nodes)}
        self.edges = [(a, b) for a, b in edges if a in self.order and b in self.order and a != b]
        self.sep = sep if sep is not None else pick_separator(self.nodes)
        self.scope = name_scopes(self.nodes, self.sep)
        if len(self.nodes) >= GROUP_MIN_NODES:
            self.scope = chunk_wide_scopes(self.nodes, self.scope, self.sep)
        self.children: dict[tuple[str, ...], set] = {}  # scope -> child scopes and nodes
        self.size: dict[tuple[str, ...], int] = {}  # scope -> nodes inside
        for n, path in self.scope.items():
            for k in range(len(path) + 1):
                self.size[path[:k]] = self.size.get(path[:k], 0) + 1
                self.children.setdefault(path[:k], set()).add(path[:k + 1] if k < len(path) else n)

    @property
    def groupable(self) -> bool:
        return len(self.nodes) >= GROUP_MIN_NODES and len(self.size) > 1

    def scope_name(self, path: tuple[str, ...]) -> str:
        """A scope as the names spell it (``/encoder/layers.3``, ``model_1_block3``), for copying."""
        segs = [p for k, p in enumerate(path) if (k + 1 == len(path) or not path[k + 1].startswith(p + "_"))
                and CHUNK not in p]
        if path and CHUNK in path[-1]:
            return path[-1]
        if not self.sep:
            return segs[-1] if segs else ""
        return ("/" if self.sep == "/" else "") + self.sep.join(segs)

    def pass_through(self, path: tuple[str, ...]) -> bool:
        """A scope that holds a single child scope (and nothing else) is never shown as its own block."""
        ch = self.children.get(path, set())
        return len(ch) == 1 and isinstance(next(iter(ch)), tuple)

    def all_scopes(self) -> set[tuple[str, ...]]:
        return set(self.size)

    def ancestors(self, node: str) -> list[tuple[str, ...]]:
        """Every scope holding ``node``, outermost first (the root () included)."""
        path = self.scope.get(node, ())
        return [path[:k] for k in range(len(path) + 1)]

    def initial_expanded(self, target: int = TARGET_UNITS) -> set[tuple[str, ...]]:
        """Open scopes level by level while the view stays within ``target`` units (all of them for a small
        or unscoped graph)."""
        if not self.groupable:
            return self.all_scopes()
        expanded = {()}
        expanded |= self._pass_through_below(())
        while True:
            view = self.view(expanded)
            closed = [p for p in view.paths if p is not None]
            if not closed:
                return expanded
            trial = set(expanded)
            for p in closed:
                trial.add(p)
                trial |= self._pass_through_below(p)
            if len(self.view(trial).units) > target:
                return expanded
            expanded = trial

    def _pass_through_below(self, path: tuple[str, ...]) -> set[tuple[str, ...]]:
        out = set()
        p = path
        while self.pass_through(p):
            p = next(iter(self.children[p]))
            out.add(p)
        return out | ({path} if self.pass_through(path) else set())

    def view(self, expanded: set[tuple[str, ...]]) -> ScopeView:
        """Units (nodes, and one block per outermost collapsed scope) with edges between them."""
        unit_key: dict[str, str] = {}
        first: dict[str, int] = {}
        members: dict[str, list[str]] = {}
        paths: dict[str, tuple[str, ...] | None] = {}
        for n in self.nodes:
            key, path_of = n, None
            for p in self.ancestors(n)[1:]:
                if p not in expanded and not self.pass_through(p):
                    key, path_of = group_id(p), p
                    break
            unit_key[n] = key
            members.setdefault(key, []).append(n)
            paths.setdefault(key, path_of)
            first.setdefault(key, self.order[n])
        # a block of one node is just that node
        for key in [k for k, m in members.items() if paths[k] is not None and len(m) == 1]:
            n = members.pop(key)[0]
            unit_key[n] = n
            members[n], paths[n], first[n] = [n], None, first.pop(key)
            del paths[key]
        keys = sorted(members, key=lambda k: first[k])
        idx = {k: i for i, k in enumerate(keys)}
        uedges = sorted({(unit_key[a], unit_key[b]) for a, b in self.edges if unit_key[a] != unit_key[b]},
                        key=lambda e: (idx[e[0]], idx[e[1]]))
        depth = [0] * len(keys)
        preds: dict[int, list[int]] = {}
        for a, b in uedges:
            if idx[a] < idx[b]:  # an edge back into an earlier block does not push it down
                preds.setdefault(idx[b], []).append(idx[a])
        for i in range(len(keys)):
            if i in preds:
                depth[i] = max(depth[j] + 1 for j in preds[i])
        return ScopeView([(k, depth[i]) for i, k in enumerate(keys)], [members[k] for k in keys],
                         [paths[k] for k in keys], uedges,
                         {n: idx[k] for n, k in unit_key.items()})
