"""The layered graph layout: layers by depth, no overlaps, fewer crossings than the input order, fast."""

from __future__ import annotations

import time

import numpy as np

from workbench.app.layout import layered_layout, layout_graph


def _boxes_overlap(lay) -> bool:
    for layer in np.unique(lay.layer):
        xs = np.sort(lay.x[lay.layer == layer])
        if np.any(np.diff(xs) < lay.node_w - 1e-6):
            return True
    return False


def test_chain_is_a_straight_vertical_line():
    nodes = [(f"n{i}", i) for i in range(5)]
    lay = layered_layout(nodes, [(f"n{i}", f"n{i + 1}") for i in range(4)])
    assert np.allclose(lay.x, lay.x[0])
    assert list(lay.layer) == [0, 1, 2, 3, 4]
    assert np.all(np.diff(lay.y) > lay.node_h)
    assert lay.crossings == 0


def test_diamond_branches_side_by_side_and_join_centred():
    nodes = [("a", 0), ("b", 1), ("c", 1), ("d", 2)]
    lay = layered_layout(nodes, [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    i = lay.index()
    assert lay.layer[i["b"]] == lay.layer[i["c"]] == 1
    assert abs(lay.x[i["b"]] - lay.x[i["c"]]) >= lay.node_w
    assert abs(lay.x[i["d"]] - (lay.x[i["b"]] + lay.x[i["c"]]) / 2) < 1e-6
    assert not _boxes_overlap(lay)


def test_sources_sit_just_above_their_consumer():
    nodes = [("x", 0), ("y", 1), ("z", 2), ("const", 0), ("add", 3)]
    lay = layered_layout(nodes, [("x", "y"), ("y", "z"), ("z", "add"), ("const", "add")])
    i = lay.index()
    assert lay.layer[i["const"]] == 2


def test_long_edges_are_routed_through_dummies_and_end_at_boxes():
    nodes = [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
    lay = layered_layout(nodes, [("a", "b"), ("b", "c"), ("c", "d"), ("a", "d")])
    skip = next(pts for s, t, pts in lay.edges if (s, t) == (0, 3))
    assert len(skip) == 4  # source, two dummies, target
    assert skip[0][1] == lay.y[0] + lay.node_h / 2 and skip[-1][1] == lay.y[3] - lay.node_h / 2


def test_barycenter_ordering_removes_avoidable_crossings():
    # two independent chains whose middle layer is given crossed
    nodes = [("a1", 0), ("b1", 0), ("b2", 1), ("a2", 1), ("a3", 2), ("b3", 2)]
    edges = [("a1", "a2"), ("a2", "a3"), ("b1", "b2"), ("b2", "b3")]
    lay = layered_layout(nodes, edges)
    assert lay.crossings == 0
    assert not _boxes_overlap(lay)


def test_hit_testing_and_visible_query():
    lay = layered_layout([("a", 0), ("b", 1)], [("a", "b")])
    assert lay.node_at(lay.x[1], lay.y[1]) == 1
    assert lay.node_at(lay.x[1] + lay.node_w, lay.y[1]) is None
    assert list(lay.in_rect(-1e9, -1e9, 1e9, lay.y[0])) == [0]


def test_empty_graph():
    lay = layered_layout([], [])
    assert lay.names == [] and lay.bounds == (0.0, 0.0, 0.0, 0.0)


def test_demo_graph_layout(demo_paths):
    from workbench.model_prep import prepare_model

    g = prepare_model(demo_paths[0]).graph
    lay = layout_graph(g)
    assert lay.names == g.node_names
    assert not _boxes_overlap(lay)
    assert len(lay.edges) == len({(a, b) for a, b, _ in g.edges()})


def test_two_thousand_nodes_lay_out_quickly():
    rng = np.random.default_rng(0)
    nodes, edges, depth = [], [], {}
    for i in range(2000):
        preds = [f"n{i - 1}"] if i else []
        if i > 6 and rng.random() < 0.2:
            preds.append(f"n{i - int(rng.integers(2, 6))}")
        if i > 2 and rng.random() < 0.3:  # side branches make layers wide
            preds = [f"n{i - 2}"]
        d = max((depth[p] + 1 for p in preds), default=0)
        depth[f"n{i}"] = d
        nodes.append((f"n{i}", d))
        edges += [(p, f"n{i}") for p in preds]
    t = time.perf_counter()
    lay = layered_layout(nodes, edges)
    assert time.perf_counter() - t < 2.0
    assert not _boxes_overlap(lay)
