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
        """A block's own scope segment ("layers.3"); a node's name."""
        p = self.paths[i]
        return p[-1] if p else self.units[i][0]


class ScopeTree:
    """The scope tree of a graph: ``nodes`` ((name, op) in topological order), ``edges`` (name pairs)."""

    def __init__(self, nodes: Sequence[str], edges: Sequence[tuple[str, str]], sep: str | None = None):
        self.nodes = list(nodes)
        self.order = {n: i for i, n in enumerate(self.nodes)}
        self.edges = [(a, b) for a, b in edges if a in self.order and b in self.order and a != b]
        self.sep = sep if sep is not None else pick_separator(self.nodes)
        self.scope = {n: (scope_of(n, self.sep) if self.sep else ()) for n in self.nodes}
        self.children: dict[tuple[str, ...], set] = {}  # scope -> child scopes and nodes
        self.size: dict[tuple[str, ...], int] = {}  # scope -> nodes inside
        for n, path in self.scope.items():
            for k in range(len(path) + 1):
                self.size[path[:k]] = self.size.get(path[:k], 0) + 1
                self.children.setdefault(path[:k], set()).add(path[:k + 1] if k < len(path) else n)

    @property
    def groupable(self) -> bool:
        return self.sep is not None and len(self.nodes) >= GROUP_MIN_NODES and len(self.size) > 1

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
