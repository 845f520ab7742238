"""The compiled one-pass statistics (``analyzers/_pairstats.c``) against numpy and against the onnxruntime
statistics graphs they replace: deployed mode's (integers against FP32) and the exact diff engine's (the Q/DQ
simulation's float tensors, cumulative and isolated, against FP32).

The kernel tests compare with float64 numpy on the same integers and FP32 values (layouts, padding, a subtracted
tensor, every integer type, NaN and inf); the engine tests run ``--kernels deployed`` both ways on the same
machine, so they hold with either NCHWc block size (CI runs the ``kernels`` tests on an emulated AVX2 CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import resources
from analyzers import pair_stats_native as P
from tests.models import residual_net, save, save_npz
from workbench.analysis import analyze
from workbench.session import Session

pytestmark = pytest.mark.skipif(P._pairstats is None, reason="the _pairstats extension is not built here "
                                "(no C compiler at install time); deployed mode uses the statistics graph")

RNG = np.random.default_rng(7)


def _reference(x, q, scale, zp, keep, minus=None, bounds=(-math.inf, math.inf)):
    """float64 numpy of what the kernel computes: x.x and e.e summed over the axes not in ``keep``, and the values
    outside ``bounds``."""
    xv = x if minus is None else (x - minus)
    y = (q.astype(np.int64) - zp).astype(np.float32) * np.float32(scale)
    e = y - xv
    axes = tuple(a for a in range(x.ndim) if a not in keep)
    f = np.float64
    return ((xv.astype(f) ** 2).sum(axes), (e.astype(f) ** 2).sum(axes), (y.astype(f) ** 2).sum(),
            float(e.max()), float(e.min()), float(e.astype(f).sum()),
            int(np.count_nonzero(xv > np.float32(bounds[1])) + np.count_nonzero(xv < np.float32(bounds[0]))))


def _check(got, want):
    xx, ee, yy, emax, emin, es, outside = got
    assert outside == want[6]
    assert np.allclose(xx, want[0], rtol=1e-6) and np.allclose(ee, want[1], rtol=1e-6)
    assert yy == pytest.approx(want[2], rel=1e-6)
    assert (emax, emin) == (want[3], want[4])  # the same float32 values: exact
    assert es == pytest.approx(want[5], rel=1e-5, abs=1e-6)


def _grid(x, scale, zp, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / np.float32(scale)) + zp, info.min, info.max).astype(dtype)


@pytest.mark.parametrize("dtype,zp", [(np.uint8, 128), (np.int8, 0), (np.uint16, 30000), (np.int16, -5)])
@pytest.mark.parametrize("sample_major", [True, False])
def test_plain_layouts_every_integer_type(dtype, zp, sample_major):
    """NCHW FP32 against integers held NHWC (strided read) and NCHW, per sample and channel or per channel."""
    x = RNG.standard_normal((3, 5, 7, 9)).astype(np.float32)
    q = _grid(x, 0.03, zp, dtype)
    q[0, 1, 2, 3] = np.iinfo(dtype).max  # one value far off
    for held, perm in ((q.transpose(0, 2, 3, 1).copy(), (0, 2, 3, 1)), (q, None)):
        plan = P.plain_plan(0.03, zp, perm, 4, 1, sample_major, (-1.5, 1.0))
        got = P.run_once(plan, x, None, held)
        want = _reference(x, q, 0.03, zp, (0, 1) if sample_major else (1,), bounds=(-1.5, 1.0))
        assert want[6] > 0
        _check(got, want)


@pytest.mark.parametrize("walk", ["block kernel", "blocks", "pixels"])
@pytest.mark.parametrize("channels,block", [(20, 8), (32, 16), (3, 4), (37, 16)])
def test_blocked_fp32_with_padding_and_a_subtracted_tensor(channels, block, walk, monkeypatch):
    """NCHWc-blocked FP32 (the last block padded with garbage, which must not count) against NHWC integers, with
    the fused-residual form x = out - sum; walked block by block (by the AVX2 block kernel where the CPU has it, or
    by packed rows) and pixel by pixel."""
    if walk == "block kernel" and not P._block_kernel(8):
        pytest.skip("no AVX2 here: the block kernel is not built or not picked")
    monkeypatch.setattr(P, "BLOCK_WALK_PIXELS", 0 if walk != "pixels" else 10**9)
    if walk != "block kernel":
        P._pairstats.block8(False)
    try:
        _blocked_case(channels, block)
    finally:
        P._pairstats.block8(True)


def _blocked_case(channels, block):
    n, h, w = 2, 4, 33
    cb = -(-channels // block)
    src = RNG.standard_normal((n, channels, h, w)).astype(np.float32)
    minus = RNG.standard_normal((n, cb * block, h, w)).astype(np.float32)
    raw = np.full((n, cb * block, h, w), 1e6, np.float32)  # padding: far off the grid
    raw[:, :channels] = src + minus[:, :channels]

    def as_blocked(a):  # [N, C', H, W] -> memory [N, C'/B, H, W, B]
        return np.ascontiguousarray(a.reshape(n, cb, block, h, w).transpose(0, 1, 3, 4, 2))

    for dtype, zp, scale in ((np.uint8, 3, 0.05), (np.int8, 0, 0.05), (np.uint16, 300, 0.001), (np.int16, -5, 0.001)):
        q = _grid(src, scale, zp, dtype)
        for sm, subtracted in ((True, True), (False, True), (True, False)):
            x, m = (raw, minus) if subtracted else (src, None)
            blocked = np.pad(x[:, :channels], ((0, 0), (0, cb * block - channels), (0, 0), (0, 0)), constant_values=1e6)
            plan = P.blocked_plan(scale, zp, (0, 2, 3, 1), channels, block, sm, (-0.2, 0.5))
            xx, ee, *rest = P.run_once(plan, as_blocked(blocked), None if m is None else as_blocked(m),
                                       q.transpose(0, 2, 3, 1).copy())
            xx, ee = (a.reshape(*a.shape[:-2], -1)[..., :channels] for a in (xx, ee))  # as DeployedEngine folds
            _check((xx, ee, *rest), _reference(src if m is None else raw[:, :channels] - m[:, :channels], q, scale,
                                               zp, (0, 1) if sm else (1,), bounds=(-0.2, 0.5)))


def test_rows_longer_than_the_float_lanes_and_element_wise_groups():
    """Channels-last rows longer than the kernel's float lanes (4096), and groups that split every value."""
    x = RNG.standard_normal((2, 3, 5000)).astype(np.float32)
    q = _grid(x, 0.02, 0, np.int8)
    plan = P.plain_plan(0.02, 0, None, 3, 2, True)
    _check(P.run_once(plan, x, None, q), _reference(x, q, 0.02, 0, (0, 2)))
    v = RNG.standard_normal(11).astype(np.float32)
    qv = _grid(v, 0.1, 0, np.int8)
    plan = P.plain_plan(0.1, 0, None, 1, 0, False)  # rank 1, channel axis 0: nothing reduced
    _check(P.run_once(plan, v, None, qv), _reference(v, qv, 0.1, 0, (0,)))


def test_nan_and_inf():
    """A NaN makes the extremes NaN (the e.e sums say where); infinities are extremes, not NaN."""
    x = RNG.standard_normal((1, 2, 3, 600)).astype(np.float32)
    q = _grid(x, 0.02, 0, np.int8)
    plan = P.plain_plan(0.02, 0, None, 4, 1, False)
    x[0, 1, 2, 500] = np.inf
    xx, ee, yy, emax, emin, es, _ = P.run_once(plan, x, None, q)
    assert emin == -math.inf and np.isfinite(emax) and ee[1] == math.inf and np.isfinite(ee[0])
    x[0, 0, 0, 7] = np.nan
    xx, ee, yy, emax, emin, es, _ = P.run_once(plan, x, None, q)
    assert math.isnan(emax) and math.isnan(emin) and math.isnan(ee[0])


def test_mismatched_layouts_and_geometry_outside_the_buffers_are_refused():
    x = np.zeros((2, 3, 4, 5), np.float32)
    q = np.zeros(x.shape, np.uint8)
    with pytest.raises(ValueError, match="do not fit"):
        P.run_once(P.plain_plan(1.0, 0, None, 4, 1, False), x, None, np.zeros((2, 4, 3, 5), np.uint8))
    geo = (x.shape, x.strides, 0, None, 0, q.strides, 0, (0, 1, 0, 0), 0)
    ok = P._pairstats.pair_stats(x, None, q, geo, 1.0, 0, -1.0, 1.0, np.zeros(3), np.zeros(3))
    assert ok == (0.0, 0.0, 0.0, 0.0, 0)
    with pytest.raises(TypeError):
        P._pairstats.pair_stats(x.astype(np.float64), None, q, geo, 1.0, 0, -1.0, 1.0, np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="too small"):
        P._pairstats.pair_stats(x, None, q, geo, 1.0, 0, -1.0, 1.0, np.zeros(2), np.zeros(2))
    past = (x.shape, x.strides, 4, None, 0, q.strides, 0, (0, 1, 0, 0), 0)  # one value past the end of x
    with pytest.raises(ValueError, match="outside"):
        P._pairstats.pair_stats(x, None, q, past, 1.0, 0, -1.0, 1.0, np.zeros(3), np.zeros(3))
    wide = ((2, 3, 4, 6), x.strides, 0, None, 0, q.strides, 0, (0, 1, 0, 0), 0)
    with pytest.raises(ValueError, match="outside"):
        P._pairstats.pair_stats(x, None, q, wide, 1.0, 0, -1.0, 1.0, np.zeros(3), np.zeros(3))


def test_batches_share_a_buffer_and_fold_in_sample_order():
    """Per-sample sums of several batches go out together, in sample order, with the totals of those batches; a
    short last batch and a larger batch (which closes the buffer early) keep every row once, in order."""
    plan = P.plain_plan(0.05, 0, None, 4, 1, True, (-1.0, 1.0))
    ls = P.LayerStats(plan, slots=3)
    xs = [RNG.standard_normal((n, 4, 3, 3)).astype(np.float32) for n in (2, 2, 2, 2, 1, 3)]
    folded = []
    for x in xs:
        job = ls.job(x, None, _grid(x, 0.05, 0, np.int8))
        folded += ls.add(job, P.LayerStats.run(job), x.size)
    folded += ls.finish()
    assert [p[0].shape[0] for p in folded] == [6, 3, 3]  # 3 batches; 2 + 1 (closed by the larger one); the last
    want = [_reference(x, _grid(x, 0.05, 0, np.int8), 0.05, 0, (0, 1), bounds=(-1.0, 1.0)) for x in xs]
    assert np.allclose(np.concatenate([p[0] for p in folded]), np.concatenate([w[0] for w in want]), rtol=1e-6)
    assert np.allclose(np.concatenate([p[1] for p in folded]), np.concatenate([w[1] for w in want]), rtol=1e-6)
    assert sum(p[7] for p in folded) == sum(x.size for x in xs)
    assert sum(p[6] for p in folded) == sum(w[6] for w in want) > 0
    assert max(p[3] for p in folded) == max(w[3] for w in want)
    assert sum(p[2] for p in folded) == pytest.approx(sum(w[2] for w in want), rel=1e-6)


def _compiled_and_graph(session: Session, monkeypatch, samples=None, kernels="deployed"):
    fast = analyze(session, samples=samples, kernels=kernels)
    with monkeypatch.context() as m:
        m.setenv(P.FORCE_GRAPH_ENV, "1")
        graph = analyze(session, samples=samples, kernels=kernels)
    return fast, graph


def _same_metrics(ca, cb, node):
    assert ca.sqnr_db == pytest.approx(cb.sqnr_db, abs=1e-3, nan_ok=True), node
    assert ca.max_abs == pytest.approx(cb.max_abs, rel=1e-6, abs=1e-9, nan_ok=True), node
    assert ca.mean_error == pytest.approx(cb.mean_error, rel=1e-4, abs=1e-7, nan_ok=True), node
    assert ca.cosine == pytest.approx(cb.cosine, abs=1e-6, nan_ok=True), node
    if cb.channel_sqnr_min is not None:
        assert ca.channel_sqnr_min == pytest.approx(cb.channel_sqnr_min, abs=1e-3), node


def _same(fast, graph):
    assert [lay.node for lay in fast.layers] == [lay.node for lay in graph.layers]
    assert sum(np.isfinite(lay.cumulative.sqnr_db) for lay in fast.layers) == \
        sum(np.isfinite(lay.cumulative.sqnr_db) for lay in graph.layers) > 0
    for a, b in zip(fast.layers, graph.layers):
        _same_metrics(a.cumulative, b.cumulative, a.node)
        assert (a.isolated is None) == (b.isolated is None), a.node
        if a.isolated is not None:
            _same_metrics(a.isolated, b.isolated, a.node)
        assert a.clip_rate == b.clip_rate, a.node
    assert np.allclose(fast.heatmap, graph.heatmap, atol=1e-3, equal_nan=True)
    assert [(o.top1_agreement, o.sqnr_db) for o in fast.outputs] == [(o.top1_agreement, o.sqnr_db)
                                                                      for o in graph.outputs]


@pytest.mark.kernels
def test_deployed_analysis_compiled_equals_the_statistics_graph_on_a_residual_net(tmp_path, monkeypatch):
    """NCHWc blocks with padded channels, a fused residual read as out - sum and a re-run Conv: every layer's
    figures from the compiled passes equal the onnxruntime graph's."""
    rng = np.random.default_rng(1)
    s = Session(str(save(residual_net(), tmp_path / "m.onnx")),
                str(save_npz(tmp_path / "c.npz", x=rng.standard_normal((32, 3, 8, 8)).astype(np.float32))),
                str(save_npz(tmp_path / "e.npz", x=rng.standard_normal((150, 3, 8, 8)).astype(np.float32))))
    _same(*_compiled_and_graph(s, monkeypatch))


@pytest.mark.kernels
def test_deployed_analysis_compiled_equals_the_statistics_graph_on_the_demo(monkeypatch):
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    _same(*_compiled_and_graph(s, monkeypatch, samples=96))


def _residual_session(tmp_path) -> Session:
    rng = np.random.default_rng(1)
    return Session(str(save(residual_net(), tmp_path / "m.onnx")),
                   str(save_npz(tmp_path / "c.npz", x=rng.standard_normal((32, 3, 8, 8)).astype(np.float32))),
                   str(save_npz(tmp_path / "e.npz", x=rng.standard_normal((150, 3, 8, 8)).astype(np.float32))))


def test_exact_analysis_compiled_equals_the_statistics_graph(tmp_path, monkeypatch):
    """The exact diff engine's cumulative and isolated figures, clip rates and per-sample SQNR: the compiled passes
    over the fetched Q/DQ tensors equal the reductions inside the diff graph, on the demo and a residual CNN."""
    for s in (Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL), _residual_session(tmp_path)):
        fast, graph = _compiled_and_graph(s, monkeypatch, samples=96, kernels="exact")
        assert sum(lay.isolated is not None for lay in fast.layers) > 0
        _same(fast, graph)


def test_exact_engine_fetches_integers_and_drops_the_isolated_outputs_dequantization(tmp_path):
    """Pairs compared in the compiled pass read the integers of the DequantizeLinear computing their Q/DQ tensor
    (a quarter of the bytes), dequantized by the pass; the isolated copies' own DequantizeLinear nodes, read by
    nothing else, are gone. That the figures are unchanged is ``test_exact_analysis_compiled_equals_the_statistics_
    graph``'s check (the graph dequantizes in onnxruntime)."""
    import onnx  # noqa: PLC0415

    from analyzers.diff import DiffEngine  # noqa: PLC0415
    from workbench.calibration_cache import op_types_for  # noqa: PLC0415

    s = _residual_session(tmp_path)
    s.calibration()
    q = s.quantize()
    e = DiffEngine(s.prepared.load_proto(), onnx.load(str(q.path)), set(op_types_for(s.recipe)), set(q.excluded))
    g = e.graph
    pairs = [p for p in list(g.cumulative.values()) + list(g.isolated.values()) if p.y]
    assert g.isolated and pairs
    producers = {o: n for n in g.model.graph.node for o in n.output}
    for p in pairs:
        assert producers[p.y].op_type == "QuantizeLinear" and p.y_scale > 0, p.y
    iso_outputs = {o for n in g.model.graph.node if n.name.startswith("iso") for o in n.output}
    assert not [n for n in g.model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in iso_outputs
                and not any(n.output[0] in m.input for m in g.model.graph.node)]
    feed = next(iter(s.eval_data.batches(limit=4, batch_size=4)))[2]
    _, vals = e._infer(feed)
    assert {vals[p.y].dtype for p in pairs} == {np.dtype(np.uint8)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["transformer_ninf_op17", "seq_ctc_op12"])
def test_exact_analysis_compiled_equals_the_graph_on_masks_and_sequences(name, monkeypatch):
    """A transformer whose attention mask is -inf (masked tensors stay in the graph, the rest compiled) and an
    LSTM/CTC model (time-major tensors without per-sample rows)."""
    from tests.zoo import build  # noqa: PLC0415 - builds the zoo model (cached between sessions)

    p = build(name)
    fast, graph = _compiled_and_graph(Session(str(p.model), str(p.calib), str(p.eval)), monkeypatch, samples=16,
                                      kernels="exact")
    _same(fast, graph)



def test_deployed_statistics_split_over_two_threads_equal_the_overlapped_ones(tmp_path, monkeypatch):
    """Without overlap the compiled passes of a batch run half in the worker, half on the calling thread: the same
    figures as one worker beside the sessions."""
    import analyzers.deployed_engine as de  # noqa: PLC0415 - the engine whose schedule is switched

    s = _residual_session(tmp_path)
    overlapped = analyze(s, kernels="deployed")
    monkeypatch.setattr(de.DeployedEngine, "overlap", False)
    split = analyze(s, kernels="deployed")
    assert split.timings["statistics_overlapped"] == 0.0 and overlapped.timings["statistics_overlapped"] == 1.0
    for a, b in zip(split.layers, overlapped.layers):
        assert (a.cumulative.sqnr_db, a.cumulative.max_abs, a.clip_rate) == \
            (b.cumulative.sqnr_db, b.cumulative.max_abs, b.clip_rate), a.node
    assert np.array_equal(split.heatmap, overlapped.heatmap, equal_nan=True)


def test_deployed_statistics_shared_with_the_waiting_thread_give_the_same_figures(tmp_path, monkeypatch):
    """When the sessions finish a batch before the worker has run its statistics, the calling thread runs the layers
    the worker has not taken (it would otherwise wait with a core idle): each layer is run once, by either thread,
    and the figures are those of the worker alone."""
    import threading
    import time as _time

    import analyzers.deployed_engine as de  # noqa: PLC0415 - the engine whose schedule is observed

    s = _residual_session(tmp_path)
    alone = analyze(s, kernels="deployed")
    run, threads = P.LayerStats.run, []

    def slow(job):  # the worker's layers take long enough for the calling thread to reach _finish
        if threading.current_thread() is not threading.main_thread():
            _time.sleep(0.01)
        threads.append(threading.current_thread() is threading.main_thread())
        return run(job)

    monkeypatch.setattr(P.LayerStats, "run", staticmethod(slow))
    shared = analyze(s, kernels="deployed")
    assert de.DeployedEngine.overlap and any(threads) and not all(threads)  # both threads ran layers
    for a, b in zip(shared.layers, alone.layers):
        assert (a.cumulative.sqnr_db, a.cumulative.max_abs, a.cumulative.mse, a.clip_rate) == \
            (b.cumulative.sqnr_db, b.cumulative.max_abs, b.cumulative.mse, b.clip_rate), a.node
    assert np.array_equal(shared.heatmap, alone.heatmap, equal_nan=True)
