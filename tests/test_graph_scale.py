"""Names, scope blocks and folded layouts at real-model scale (Qt-free halves of the GUI's graph and table)."""

from __future__ import annotations

import numpy as np

from tests.models import deep_cnn, scoped_net
from workbench.app.layout import fold_long, layered_layout
from workbench.app.names import ELLIPSIS, NameShortener
from workbench.app.scopes import ScopeTree, is_group


def _graph(model):
    names = [n.name for n in model.graph.node]
    prod = {o: n.name for n in model.graph.node for o in n.output}
    edges = [(prod[i], n.name) for n in model.graph.node for i in n.input if i in prod]
    depth: dict[str, int] = {}
    for n in model.graph.node:
        depth[n.name] = max([depth[prod[i]] + 1 for i in n.input if i in prod] or [0])
    return names, edges, depth


def test_shortened_names_stay_distinct_and_keep_the_differing_segment():
    names, _, _ = _graph(deep_cnn())
    s = NameShortener(names)
    for width in (12, 16, 20, 40):
        short = [s.fit(n, lambda t, w=width: len(t) <= w) for n in names]
        assert all(len(t) <= width for t in short)
        if width >= 16:  # room for one segment: every name still reads differently
            assert len(set(short)) == len(names), width
    # the layer number, the only part that differs, survives; the shared prefix goes first
    assert s.fit("/features/features.12/Conv", lambda t: len(t) <= 18) == ELLIPSIS + "features.12/Conv"
    assert s.fit("/features/features.12/Conv", lambda t: True) == "/features/features.12/Conv"


def test_shortening_keeps_scope_context_when_room():
    names, _, _ = _graph(scoped_net(layers=3, branches=3))
    s = NameShortener(names)
    n = "/encoder/layers.2/branch1/act2/Relu"
    assert s.fit(n, lambda t: len(t) <= 30) == ELLIPSIS + "layers.2/branch1/act2/Relu"
    assert "act2" in s.fit(n, lambda t: len(t) <= 12)


def test_two_thousand_nodes_open_as_a_few_dozen_blocks():
    names, edges, _ = _graph(scoped_net())
    assert len(names) >= 2000
    tree = ScopeTree(names, edges)
    view = tree.view(tree.initial_expanded())
    assert 10 <= len(view.units) <= 48
    blocks = [i for i, (u, _) in enumerate(view.units) if is_group(u)]
    assert len(blocks) == 27 and all(len(view.members[i]) == 76 for i in blocks)
    assert sorted(n for m in view.members for n in m) == sorted(names)  # every node in exactly one unit
    # the blocks form the chain the layers form
    idx = {u: i for i, (u, _) in enumerate(view.units)}
    assert all(idx[a] < idx[b] for a, b in view.edges)
    depths = [view.units[i][1] for i in blocks]
    assert depths == sorted(depths) and len(set(depths)) == 27
    # expanding one block shows its members (as blocks one level down: 12 branches and merge; Concat, Add)
    p = view.paths[blocks[3]]
    view2 = tree.view(tree.initial_expanded() | {p})
    inner = [i for i, path in enumerate(view2.paths) if path is not None and path[:len(p)] == p]
    assert len(inner) == 13 and len(view2.units) == len(view.units) - 1 + 13 + 2


def test_small_models_are_not_grouped():
    names, edges, _ = _graph(deep_cnn())
    tree = ScopeTree(names, edges)
    view = tree.view(tree.initial_expanded())
    assert [u for u, _ in view.units] == names


def test_a_long_chain_is_folded_into_columns():
    names, edges, depth = _graph(deep_cnn())
    lay = layered_layout([(n, depth[n]) for n in names], edges)
    x0, y0, x1, y1 = lay.bounds
    assert (y1 - y0) / (x1 - x0) > 50  # one column: Fit would show a thin line
    f = fold_long(lay)
    fx0, fy0, fx1, fy1 = f.bounds
    assert 0.8 < (fx1 - fx0) / (fy1 - fy0) < 3.0
    # boxes never overlap, and every edge still joins its own two boxes
    pts = np.stack([f.x, f.y], 1)
    d = np.abs(pts[:, None, :] - pts[None, :, :])
    overlap = (d[..., 0] < f.node_w) & (d[..., 1] < f.node_h)
    assert overlap.sum() == len(names)
    for a, b, p in f.edges:
        assert np.allclose(p[0], (f.x[a], f.y[a] + f.node_h / 2))
        assert np.allclose(p[-1], (f.x[b], f.y[b] - f.node_h / 2))
    wide = layered_layout([(n, 0 if i % 2 else 1) for i, n in enumerate(names[:20])], [])
    assert fold_long(wide) is wide


def test_structure_note_names_the_layers_an_edit_added_and_its_cause():
    from tests.results_factory import make_result
    from workbench.app.layer_changes import structure_note
    from workbench.app.workspace import Run
    from workbench.recipe import Recipe

    before = Run("Run 1", Recipe(), make_result([("conv", "Conv"), ("fc", "Gemm")], [30, 30], [30, 30]))
    r = Recipe()
    r.set_precision("conv", "fp32")
    after = Run("Run 2", r, make_result([("conv", "Conv"), ("relu", "Relu"), ("fc", "Gemm")], [90, 12, 30],
                                        [90, 12, 30], ["fp32", "int8", "int8"]))
    note = structure_note(before, after)
    assert note.startswith("Setting conv to FP32 added 1 layer(s)") and "relu (1 flagged)" in note
    assert "removed 1: relu" in structure_note(after, before)
    assert structure_note(before, before) is None and structure_note(None, after) is None


def _chain(names):
    return ScopeTree(names, list(zip(names, names[1:])))


def test_tf_style_words_group_where_they_sit_together():
    """``model_1_block3_conv2_bn`` (no '/' or '.') and tf2onnx's ``StatefulPartitionedCall/model/block3_conv2/…``
    open as one block per ``block3``; a word spread over the model (``batch`` of batch_normalization) is no scope."""
    flat = [f"model_1_block{b}_conv{c}_{op}" for b in range(1, 9) for c in range(1, 12) for op in ("conv", "bn", "relu")]
    tree = _chain(flat + ["model_1_head_pool", "model_1_head_dense", "model_1_head_softmax"])
    view = tree.view(tree.initial_expanded())
    assert tree.groupable and [view.label(i) for i in range(len(view.units))] == \
        [f"block{b}" for b in range(1, 9)] + ["head"]
    assert tree.scope_name(view.paths[2]) == "model_1_block3"
    assert view.members[2] == [n for n in flat if n.startswith("model_1_block3_")]
    # opening block3 shows its conv1..conv11 blocks, named by their own word
    inner = tree.view(tree.initial_expanded() | {view.paths[2]})
    assert [inner.label(i) for i in range(len(inner.units)) if inner.paths[i] and len(inner.paths[i]) == 3][:2] == \
        ["conv1", "conv2"]

    tf = [f"StatefulPartitionedCall/model/block{b}_conv{c}/{op}" for b in range(1, 9) for c in range(1, 12)
          for op in ("Conv2D", "BiasAdd", "Relu")]
    tree = _chain(tf)
    view = tree.view(tree.initial_expanded())
    assert [view.label(i) for i in range(len(view.units))] == [f"block{b}" for b in range(1, 9)]
    assert tree.scope_name(view.paths[0]) == "/StatefulPartitionedCall/model/block1"

    keras = [n for i in range(1, 80) for n in (f"conv2d_{i}", f"batch_normalization_{i}", f"re_lu_{i}")]
    scopes = _chain(keras).scope
    assert not any(p and p[0] in ("batch", "re", "conv2d") for p in scopes.values())


def test_flat_names_open_as_runs_of_consecutive_layers():
    """2,000 Keras-style flat names (``conv2d_15``…) or one scope holding every layer open as a few dozen blocks of
    layers that follow each other, named by their first and last; every node in one block, in graph order."""
    keras = [n for i in range(1, 700) for n in (f"conv2d_{i}", f"batch_normalization_{i}", f"re_lu_{i}")]
    for names in (keras, [f"StatefulPartitionedCall/model/{n}/Op" for n in keras]):
        tree = _chain(names)
        view = tree.view(tree.initial_expanded())
        assert 10 <= len(view.units) <= 48
        flat = [n for m in view.members for n in m]
        assert flat == names  # consecutive runs, in order, covering everything
        first = view.members[0]
        label = view.label(0)
        assert label.startswith(first[0].split("/")[-1 if "/" not in first[0] else -2]) and "…" in label
