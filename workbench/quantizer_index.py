"""onnxruntime's QDQ quantizer with its graph lookups indexed: the same INT8 model in linear instead of quadratic time.

Why by hand: onnxruntime's ``ONNXModel`` (1.20 to 1.32 at least) scans every node of the graph for each tensor
it rewires (``replace_input_of_all_nodes``, ``input_name_to_nodes``) and every initializer for each one it adds,
so ``quantize_static`` is quadratic in the graph's size: 44 s for a 2,057-node model on the 2-core VM
(docs/benchmarks.md, "Quantizing large graphs"). ``IndexedONNXModel`` keeps name -> node and name -> initializer
indexes beside the graph and answers the same calls from them. Nothing else of the quantizer changes; tests check
that the model it writes is byte-identical to the plain quantizer's (``tests/test_quantizer_index.py``).

It runs only with the onnxruntime quantizer it was verified against (``VERIFIED``: a fingerprint of the package's
Python files); another version runs as it is until the byte-identity tests pass with it
(``QWB_INDEXED_ORT_QUANTIZER=force``) and its fingerprint is added.

The indexes follow every change made through ``ONNXModel``'s methods. A change made behind their back (nodes or
initializers added, removed or replaced directly on the graph) is caught by a cheap fingerprint (the lists'
lengths and their first and last elements) and the index is rebuilt; onnxruntime's QDQ quantizer makes none
that the fingerprint misses (it edits node inputs directly only on nodes not yet in the graph, and only in its
QOperator format, which this tool does not use). ``QWB_PLAIN_ORT_QUANTIZER=1`` turns the index off.

The same block and check also swap in ``workbench.quantizer_weights``: per-channel weights quantized in one numpy
pass instead of one call per channel, the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import onnxruntime.quantization
from onnxruntime.quantization import base_quantizer, qdq_quantizer, quant_utils
from onnxruntime.quantization.onnx_model import ONNXModel

from . import quantizer_weights

# quantizer_fingerprint() of the onnxruntime quantizers the index was checked byte-identical with
# (tests/test_quantizer_index.py, and every zoo model with four recipes)
VERIFIED = {"0577d8f96c1109683d7755cd9f6a61754d97ca900e92968020ba05c659556529": "onnxruntime 1.32.0"}

_find_by_name = quant_utils.find_by_name
_owners: dict[int, tuple] = {}  # id(graph.initializer) -> (that container, its IndexedONNXModel), within the block


def _names(field) -> dict[str, int]:
    """Non-empty names -> how many times they occur (a node may read one tensor twice: ``Mul(x, x)``)."""
    counts: dict[str, int] = {}
    for name in field:
        if name:
            counts[name] = counts.get(name, 0) + 1
    return counts


class _ConsumersView(Mapping):
    """``input_name_to_nodes()`` answered from the index: one tensor's readers without scanning the graph.

    onnxruntime calls it as ``input_name_to_nodes()[name]`` once per quantized tensor. The view stays a
    snapshot: if the graph is about to change while a view is still held, the view first copies the full
    mapping as onnxruntime would have built it.
    """

    def __init__(self, model: "IndexedONNXModel"):
        self._model = model
        self._lists: dict[str, list] = {}
        self._frozen: dict | None = None

    def freeze(self) -> None:
        """Copy the whole mapping now, before the graph changes under it."""
        if self._frozen is None:
            self._frozen = ONNXModel.input_name_to_nodes(self._model)
            self._frozen.update(self._lists)  # lists already handed out stay the same objects

    def __getitem__(self, name: str) -> list:
        if self._frozen is not None:
            return self._frozen[name]
        if name not in self._lists:
            readers = self._model._readers(name)
            if not readers:
                raise KeyError(name)
            self._lists[name] = readers
        return self._lists[name]

    def __iter__(self) -> Iterator[str]:
        self.freeze()
        return iter(self._frozen)

    def __len__(self) -> int:
        self.freeze()
        return len(self._frozen)


class IndexedONNXModel(ONNXModel):
    """``ONNXModel`` whose name lookups are dictionary lookups; same calls, same results, same graph edits."""

    def __init__(self, model):
        super().__init__(model)
        inits = model.graph.initializer
        _owners[id(inits)] = (inits, self)  # find_by_name(name, model.initializer()) is answered by the index
        self._node_key = None  # fingerprint of graph.node when the node index was last known good
        self._init_key = None
        self._views: list[weakref.ref] = []  # input_name_to_nodes() views that may still be held

    # ---- node index: tensor name -> {node ordinal: occurrences}, ordinals in graph order ----

    def _fingerprint(self, field) -> tuple:
        """Identities, not contents: a list rebuilt with equal messages is still a different list. The tuple holds
        the objects themselves so that their ids cannot be reused while it is kept."""
        n = len(field)
        return (self.model.graph, n, field[0] if n else None, field[-1] if n else None)

    @staticmethod
    def _same(key, now) -> bool:
        return (key is not None and key[1] == now[1] and key[0] is now[0] and key[2] is now[2]
                and key[3] is now[3])

    def _nodes_synced(self) -> None:
        nodes = self.model.graph.node
        if not self._same(self._node_key, self._fingerprint(nodes)):
            self._by_ord: dict[int, object] = {}
            self._ord_of: dict[int, int] = {}
            self._readers_of: dict[str, dict[int, int]] = {}
            self._writers_of: dict[str, dict[int, int]] = {}
            self._next = 0
            for node in nodes:
                self._register(node)
            self._node_key = self._fingerprint(nodes)

    def _register(self, node) -> None:
        o = self._next
        self._next += 1
        self._by_ord[o] = node
        self._ord_of[id(node)] = o
        for name, k in _names(node.input).items():
            self._readers_of.setdefault(name, {})[o] = k
        for name, k in _names(node.output).items():
            self._writers_of.setdefault(name, {})[o] = k

    def _readers(self, name: str) -> list:
        """The nodes reading ``name``, in graph order, once per read (as ``input_name_to_nodes`` lists them)."""
        self._nodes_synced()
        d = self._readers_of.get(name)
        return [self._by_ord[o] for o in sorted(d) for _ in range(d[o])] if d else []

    def _changing(self) -> None:
        """The graph is about to change: views still held become full copies first."""
        for ref in self._views:
            view = ref()
            if view is not None:
                view.freeze()
        self._views.clear()

    def _move(self, index: dict, o: int, old: str, new: str, k: int) -> None:
        d = index[old]
        del d[o]
        if not d:
            del index[old]
        if new and k:
            index.setdefault(new, {})
            index[new][o] = index[new].get(o, 0) + k

    def _rename(self, index: dict, field_of, old: str, new: str, names=None) -> None:
        """Rename ``old`` to ``new`` in every indexed node that has it (only those named ``names`` if given)."""
        if old not in index:
            return
        self._changing()
        for o in list(index[old]):
            node = self._by_ord[o]
            if names is not None and node.name not in names:
                continue
            field = field_of(node)
            k = 0
            for j in range(len(field)):
                if field[j] == old:
                    field[j] = new
                    k += 1
            self._move(index, o, old, new, k)

    def replace_input_of_all_nodes(self, old_input_name, new_input_name):
        self._nodes_synced()
        self._rename(self._readers_of, lambda n: n.input, old_input_name, new_input_name)

    def replace_input_of_nodes(self, old_input_name, new_input_name, node_names_set):
        self._nodes_synced()
        self._rename(self._readers_of, lambda n: n.input, old_input_name, new_input_name, node_names_set)

    def replace_output_of_all_nodes(self, old_output_name, new_output_name):
        self._nodes_synced()
        self._rename(self._writers_of, lambda n: n.output, old_output_name, new_output_name)

    def replace_output_of_nodes(self, old_output_name, new_output_name, node_names_set):
        self._nodes_synced()
        self._rename(self._writers_of, lambda n: n.output, old_output_name, new_output_name, node_names_set)

    def _edit_one(self, node, outputs: bool, old: str, new: str) -> None:
        """One node's edit (``replace_node_input``/``_output``), which may be a node of the graph or a new one."""
        self._nodes_synced()
        self._changing()
        index, field = (self._writers_of, node.output) if outputs else (self._readers_of, node.input)
        (ONNXModel.replace_node_output if outputs else ONNXModel.replace_node_input)(node, old, new)
        o = self._ord_of.get(id(node))
        if o is not None and self._by_ord.get(o) is node and o in index.get(old, {}):
            self._move(index, o, old, new, index[old][o] - sum(1 for x in field if x == old))

    def replace_node_input(self, node, old_input_name, new_input_name):  # a staticmethod in ONNXModel
        self._edit_one(node, False, old_input_name, new_input_name)

    def replace_node_output(self, node, old_output_name, new_output_name):  # a staticmethod in ONNXModel
        self._edit_one(node, True, old_output_name, new_output_name)

    def add_node(self, node):
        self._nodes_synced()
        self._changing()
        super().add_node(node)
        nodes = self.model.graph.node
        self._register(nodes[-1])  # the graph holds a copy of ``node``
        self._node_key = self._fingerprint(nodes)

    def add_nodes(self, nodes_to_add):
        for node in nodes_to_add:
            self.add_node(node)

    def remove_node(self, node):
        self._changing()
        super().remove_node(node)  # removes the first node *equal* to ``node``: rebuild rather than guess which
        self._node_key = None

    def input_name_to_nodes(self):
        self._nodes_synced()
        view = _ConsumersView(self)
        self._views = [r for r in self._views if r() is not None]  # views usually die at once (refcounting)
        self._views.append(weakref.ref(view))
        return view

    # ---- initializer index: name -> the first initializer of that name ----

    def _inits_synced(self) -> None:
        inits = self.model.graph.initializer
        if not self._same(self._init_key, self._fingerprint(inits)):
            self._first_init: dict[str, object] = {}
            for t in inits:
                self._first_init.setdefault(t.name, t)
            self._init_key = self._fingerprint(inits)

    def _inits_added(self, before: int) -> None:
        inits = self.model.graph.initializer
        for t in inits[before:]:
            self._first_init.setdefault(t.name, t)
        self._init_key = self._fingerprint(inits)

    def get_initializer(self, name):
        self._inits_synced()
        return self._first_init.get(name)

    def add_initializer(self, tensor):
        self._inits_synced()
        if tensor.name not in self._first_init:
            before = len(self.model.graph.initializer)
            self._check_init(tensor)
            self.model.graph.initializer.extend([tensor])
            self._inits_added(before)

    def initializer_extend(self, inits):
        self._inits_synced()
        before = len(self.model.graph.initializer)
        super().initializer_extend(inits)
        self._inits_added(before)

    def remove_initializer(self, tensor):
        super().remove_initializer(tensor)
        self._init_key = None

    # ---- whole-graph rewrites: let onnxruntime do them, then start the indexes afresh ----

    def _rewrite(self, method, *args):
        self._changing()
        try:
            return method(self, *args)
        finally:
            self._node_key = self._init_key = None

    def clean_initializers(self):
        return self._rewrite(ONNXModel.clean_initializers)

    def topological_sort(self):
        return self._rewrite(ONNXModel.topological_sort)

    def remove_unused_constant(self):
        return self._rewrite(ONNXModel.remove_unused_constant)

    def replace_gemm_with_matmul(self):
        return self._rewrite(ONNXModel.replace_gemm_with_matmul)


def find_by_name(item_name, item_list):
    """quant_utils.find_by_name, answered from the index when ``item_list`` is an indexed graph's initializers
    (onnxruntime's quantizer calls it once or twice per tensor, each a scan of every initializer)."""
    owner = _owners.get(id(item_list))
    if owner is not None and owner[0] is item_list and owner[1].model.graph.initializer is item_list:
        return owner[1].get_initializer(item_name)
    return _find_by_name(item_name, item_list)


_lock = threading.Lock()
_depth = 0
# the per-channel weight quantization in one pass rides on the same check (workbench.quantizer_weights)
_SWAPS = ((base_quantizer, "ONNXModel", ONNXModel, IndexedONNXModel),
          (base_quantizer, "find_by_name", _find_by_name, find_by_name),
          (qdq_quantizer, "find_by_name", _find_by_name, find_by_name),
          (qdq_quantizer, "quantize_onnx_initializer", quantizer_weights._plain,
           quantizer_weights.quantize_onnx_initializer))


@functools.cache
def quantizer_fingerprint() -> str:
    """sha256 over onnxruntime's quantization package's Python files (path and content): any change to the code
    the index stands in for, or that edits the graph beside it, changes it."""
    root = Path(onnxruntime.quantization.__file__).parent
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def enabled() -> bool:
    """Whether ``indexed_quantizer`` swaps the index in: with the verified quantizer only, unless
    ``QWB_INDEXED_ORT_QUANTIZER=force`` (to verify another); ``QWB_PLAIN_ORT_QUANTIZER=1`` turns it off."""
    if os.environ.get("QWB_PLAIN_ORT_QUANTIZER", "") in ("1", "true", "yes"):
        return False
    return os.environ.get("QWB_INDEXED_ORT_QUANTIZER") == "force" or quantizer_fingerprint() in VERIFIED


@contextmanager
def indexed_quantizer():
    """Within the block, onnxruntime's quantizers build their graph as an ``IndexedONNXModel``.

    Safe with several threads quantizing at once: the swap is counted and undone by the last one out.
    """
    global _depth
    if not enabled() or any(getattr(mod, name, None) not in (plain, fast) for mod, name, plain, fast in _SWAPS):
        yield  # an onnxruntime whose quantizer is built differently: run it as it is
        return
    with _lock:
        _depth += 1
        for mod, name, _plain, fast in _SWAPS:
            setattr(mod, name, fast)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for mod, name, plain, _fast in _SWAPS:
                    setattr(mod, name, plain)
                _owners.clear()
