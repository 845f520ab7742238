"""``--kernels deployed`` runs the FP32 model once: layer tensors come from the plain session's own optimized graph.

Each figure is checked against the same analysis with the FP32 layer tensors exposed in the source model (the
fallback, which blocks onnxruntime's fusions and runs the plain session beside it for the outputs): two
computations of the same figures on the same machine, so these hold on CPUs with and without VNNI and with either
NCHWc block size (16 with AVX-512, 8 with AVX2: CI runs the ``kernels`` tests emulated on the latter)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import analyzers.deployed_engine as de
import resources
import workbench.analysis as analysis_mod
from analyzers import fp32_taps
from analyzers.fp32_taps import block_from_padding, block_sizes, count_outside_blocked, map_fp32, mlas_block_size
from backends.runner import SessionConfig, build_session
from tests.models import residual_net, save, save_npz
from tests.zoo import build
from workbench.analysis import analyze
from workbench.session import Session


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    d = tmp_path_factory.mktemp("residual")
    rng = np.random.default_rng(1)
    return (str(save(residual_net(), d / "m.onnx")),
            str(save_npz(d / "calib.npz", x=rng.standard_normal((32, 3, 8, 8)).astype(np.float32))),
            str(save_npz(d / "eval.npz", x=rng.standard_normal((150, 3, 8, 8)).astype(np.float32))))


def _spied(monkeypatch, fallback: bool = False) -> list:
    """The engines ``analyze`` builds (and, with ``fallback``, the optimized FP32 graph refused: today's path)."""
    engines = []

    class Spy(de.DeployedEngine):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            engines.append(self)

    monkeypatch.setattr(analysis_mod, "DeployedEngine", Spy)
    if fallback:
        def refuse(*a, **k):
            raise RuntimeError("refused")
        monkeypatch.setattr(de, "OptimizedFp32", refuse)
    return engines


def _both(session: Session, monkeypatch, samples: int | None = None):
    with monkeypatch.context() as m:
        fast = _spied(m)
        once = analyze(session, samples=samples, kernels="deployed")
    with monkeypatch.context() as m:
        slow = _spied(m, fallback=True)
        exposed = analyze(session, samples=samples, kernels="deployed")
    return fast[0], once, slow[0], exposed


def _same_figures(once, exposed, clip_abs: float = 2e-5) -> None:
    assert [lay.node for lay in once.layers] == [lay.node for lay in exposed.layers]
    for a, b in zip(once.layers, exposed.layers):
        ca, cb = a.cumulative, b.cumulative
        # (nan on both sides where a tensor holds -inf: an attention mask's Where)
        assert ca.sqnr_db == pytest.approx(cb.sqnr_db, abs=1e-3, nan_ok=True), a.node
        assert ca.max_abs == pytest.approx(cb.max_abs, rel=1e-4, abs=1e-6, nan_ok=True), a.node
        assert ca.mean_error == pytest.approx(cb.mean_error, abs=1e-6, nan_ok=True), a.node
        if cb.channel_sqnr_min is not None:
            assert ca.channel_sqnr_min == pytest.approx(cb.channel_sqnr_min, abs=1e-3), a.node
        assert a.clip_rate == pytest.approx(b.clip_rate, abs=clip_abs), a.node  # a value on the bound may flip
    assert np.allclose(once.heatmap, exposed.heatmap, atol=1e-3, equal_nan=True)  # per-sample SQNR
    # the output figures are the plain FP32 session's either way: what ``qwb quantize`` prints
    assert [(o.top1_agreement, o.sqnr_db) for o in once.outputs] == [(o.top1_agreement, o.sqnr_db)
                                                                      for o in exposed.outputs]


@pytest.mark.kernels
def test_residual_net_runs_fp32_once_with_the_figures_of_the_exposed_tensors(net, monkeypatch):
    """NCHWc blocks (padded channels), a Conv whose residual Add was fused (read as out - sum), a Conv fused with
    Add + Relu (re-run in float) and tensors that keep their name, against the exposed source tensors."""
    s = Session(*net)
    fast, once, slow, exposed = _both(s, monkeypatch)
    assert fast.fp32_unmapped == [] and slow.fp32_unmapped
    assert fast.fp32_identical is True and fast._fp32_plain is None  # one FP32 session after the first batch
    kinds = {t: ("recomputed" if t in fast._opt.recompute else "minus" if v.minus else
                 "blocked" if v.channels else "plain") for t, v in fast.fp32_sources.items()}
    kinds.update({t: "recomputed" for t in fast._opt.recompute})
    if fast._opt.nchwc:  # x86: MLAS's NCHWc kernels (elsewhere every tensor keeps its name)
        assert kinds["a0"] == kinds["s1"] == kinds["a2"] == "blocked"
        assert kinds["p1"] == "minus" and kinds["c3"] == "recomputed"
    assert once.layers and all(np.isfinite(lay.cumulative.sqnr_db) for lay in once.layers)
    _same_figures(once, exposed)


@pytest.mark.kernels
def test_demo_runs_fp32_once_with_the_figures_of_the_exposed_tensors(monkeypatch):
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    fast, once, _, exposed = _both(s, monkeypatch, samples=64)
    assert fast.fp32_unmapped == [] and fast.fp32_identical is True
    _same_figures(once, exposed)


def test_fp32_session_runs_once_per_batch(net, monkeypatch):
    """After the first batch's check of the outputs, one FP32 session run per batch (it was two)."""
    runs = []
    real = de.DeployedEngine._fp32_run

    def counted(self, feed):
        out = real(self, feed)
        runs.append(self._fp32_plain is None)
        return out

    monkeypatch.setattr(de.DeployedEngine, "_fp32_run", counted)
    s = Session(*net)
    r = analyze(s, kernels="deployed")
    assert len(runs) >= 2 and all(runs) and r.layers


def test_a_layer_tensor_nowhere_in_the_optimized_graph_falls_back_to_exposing(net, monkeypatch):
    """A tensor the optimized graph neither holds nor can re-run is named, and the caller exposes the sources."""
    fp32 = onnx.load(net[0])
    path = f"{net[0]}.opt.onnx"
    build_session(SessionConfig.for_purpose("deployed", optimized_model_path=path), fp32.SerializeToString())
    opt = onnx.load(path, load_external_data=False)
    m = map_fp32(opt, fp32, ["a0", "gap"])
    assert not m.unmapped and set(m.sources) >= {"a0", "gap"}
    # without the node that computes a0 (nor its Conv, fused away), a0 can be neither found nor re-run
    cut = onnx.ModelProto()
    cut.CopyFrom(opt)
    keep = [n for n in cut.graph.node if m.sources["a0"].tensor not in n.output]
    del cut.graph.node[:]
    cut.graph.node.extend(keep)
    # re-run from the graph input: Conv then Clip, in float
    again = map_fp32(cut, fp32, ["a0", "gap"])
    assert not again.unmapped and list(again.recompute) == ["c0", "a0"]
    # beyond the longest chain re-run, a0 can be neither found nor re-run
    monkeypatch.setattr(fp32_taps, "MAX_RECOMPUTE_CHAIN", 1)
    assert map_fp32(cut, fp32, ["a0", "gap"]).unmapped == ["a0"]


@pytest.mark.kernels
@pytest.mark.parametrize("name", ["transformer_ninf_op13", "tf_cnn_op13"])
def test_fused_away_chains_and_activations_fused_into_nchwc_convs(name, monkeypatch):
    """A transformer whose LayerNorm and Gelu onnxruntime fuses (their Mul/Add layers re-run in float from the fused
    node's input: chains of up to 9 nodes) and a TF-style CNN (x * sigmoid(x) fused into QuickGelu on NCHWc blocks,
    a HardSwish the NCHWc Conv fused itself, 16- and 24-channel tensors that settle the block size): both ran the
    exposed source model before; now the FP32 model runs once, with the exposed model's figures."""
    paths = build(name)
    s = Session(paths.model, paths.calib)
    fast, once, slow, exposed = _both(s, monkeypatch)
    assert slow.fp32_unmapped and fast.fp32_unmapped == [] and fast.fp32_identical is True
    again = fast._opt.recompute  # chains, not single nodes: a re-run node reads another re-run node's tensor
    assert any(i in again for n in again.values() for i in n.input)
    assert [lay.node for lay in once.layers if lay.deployed] == [lay.node for lay in exposed.layers if lay.deployed]
    for a, b in zip(once.layers, exposed.layers):
        if b.deployed and b.deployed.get("sqnr_db") is not None:
            assert a.deployed["sqnr_db"] == pytest.approx(b.deployed["sqnr_db"], abs=1e-3, nan_ok=True), a.node
    # a LayerNorm re-run from the fused node's input differs from the exposed one in the last bits, and the
    # calibration's largest value sits on the bound: one value of a 512-value tensor may flip
    _same_figures(once, exposed, clip_abs=2.5e-3)


def test_block_sizes_and_padding():
    assert block_sizes(32, 24) == [16, 32] and block_sizes(24, 24) == [8, 4]
    assert block_sizes(16, 16) == [16, 8, 4] and block_sizes(40, 20) == []
    x = np.arange(2 * 2 * 3 * 3 * 16, dtype=np.float32).reshape(2, 2, 3, 3, 16)
    x[:, -1, :, :, 8:] = 1e9  # the padding channels of a 24-channel tensor: never counted
    assert count_outside_blocked(x, 24, lambda v: int(np.count_nonzero(v > 100))) == \
        int(np.count_nonzero(x > 100)) - 2 * 3 * 3 * 8


def test_block_size_from_the_padding_of_every_blocked_tensor():
    """MLAS pads every blocked tensor to one block size: a 24-channel tensor left at 24 rules out 16, a 12-channel
    one padded to 16 rules out 4; channel counts that are all multiples of 16 leave it to the CPU."""
    assert block_from_padding([(16, 16), (24, 24), (16, 12)]) == 8
    assert block_from_padding([(16, 16), (32, 24)]) == 16
    assert block_from_padding([(16, 16), (32, 32)], preferred=8) == 8
    assert block_from_padding([(16, 16), (32, 32)], preferred=16) == 16
    assert block_from_padding([(16, 16), (32, 32)]) is None and block_from_padding([]) is None
    assert block_from_padding([(24, 24), (32, 24)]) is None  # no one size pads both: leave it to the layers
    assert mlas_block_size({"avx2", "avx512f"}) == 16 and mlas_block_size({"avx2"}) == 8


def test_a_chain_reads_blocked_tensors_no_layer_picked_a_block_for():
    """A fused-away chain re-run from an NCHWc tensor takes the run's block size when no layer picked one (their
    integers did not survive fusion): before, those layers showed no figures."""
    engine = object.__new__(de.DeployedEngine)  # only the block bookkeeping: no sessions
    engine._blocks, engine._block = {}, 8
    engine.fp32_sources = {"a": fp32_taps.Fp32Source("a_nchwc", channels=24),
                           "r": fp32_taps.Fp32Source("r_nchwc", minus="skip", channels=20),
                           "flat": fp32_taps.Fp32Source("flat")}
    chain = {"ln": onnx.helper.make_node("Add", ["a", "r"], ["s"]), "t": onnx.helper.make_node("Relu", ["flat"], ["u"])}
    fvals = {"a_nchwc": np.zeros((2, 24, 3, 3), np.float32), "r_nchwc": np.zeros((2, 24, 3, 3), np.float32),
             "flat": np.zeros((2, 5), np.float32)}
    assert engine._blocks_of(chain, fvals) == {"a_nchwc": 8, "r_nchwc": 8, "skip": 8}
    engine._blocks = {"a_nchwc": 8}  # a picked block is kept; a size the padding rules out is not taken
    engine._block = 16
    assert engine._blocks_of(chain, fvals) == {"a_nchwc": 8, "r_nchwc": 8, "skip": 8}  # 24 padded: only 8 fits
    fvals["r_nchwc"] = np.zeros((2, 32, 3, 3), np.float32)
    engine._block = None
    assert engine._blocks_of(chain, fvals) == {"a_nchwc": 8}  # 32 for 20 channels: 16 or 32, nothing settles it
