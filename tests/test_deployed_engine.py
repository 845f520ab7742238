"""``--kernels deployed``: the layer figures come from onnxruntime's fused kernels and the exact simulation is skipped.

Every reference is computed here, on the machine running the test, with plain onnxruntime sessions (the fused
kernels give other numbers on x86 CPUs with and without VNNI), so the ``kernels`` tests hold on either kind."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import resources
import workbench.analysis as analysis_mod
from analyzers.diff_types import AnalysisResult, ErrorMetrics, LayerResult
from analyzers.qdq_match import match
from analyzers.ranking import Thresholds, flag
from tests.cli_util import qwb
from tests.ort_util import plain_session as _sess
from tests.ort_util import with_outputs as _with_outputs
from workbench.analysis import analyze
from workbench.calibration_cache import op_types_for
from workbench.evaluate import evaluation_batching, output_agreement
from workbench.outputs import output_kinds
from workbench.session import Session

N = 96




@pytest.fixture(scope="module")
def runs():
    """The demo analysed deployed-only, and with both modes (whose deployed per-layer pass is the other source)."""
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    dep = analyze(s, samples=N, kernels="deployed")
    both = analyze(s, samples=N, isolated=False, kernels="both", remedies=False)
    return s, dep, both


@pytest.mark.kernels
def test_layer_figures_equal_the_deployed_pass_of_both_modes(runs):
    """Two different computations of the same figure: here straight from the deployed integers against FP32, with
    both modes as the exact error plus what the differing integers add (``DeployedLayerTaps.results``)."""
    _, dep, both = runs
    assert dep.layer_kernels == "deployed" and both.layer_kernels == "exact"
    compared = 0
    for lay in dep.layers:
        other = both.layer(lay.node).deployed
        assert lay.kernels == "deployed" and lay.deployed is not None, lay.node
        assert lay.deployed["sqnr_db"] == lay.cumulative.sqnr_db
        if other and other["sqnr_db"] is not None:
            assert lay.cumulative.sqnr_db == pytest.approx(other["sqnr_db"], abs=1e-3), lay.node
            compared += 1
    assert compared == len(dep.layers) == 12


@pytest.mark.kernels
def test_layer_figures_equal_an_independent_reference(runs, tmp_path):
    """Each layer's SQNR, per-channel figures and error extremes against numpy on the tensors of plain sessions: FP32
    (default optimizations) and onnxruntime's own optimized INT8 graph with every layer tensor exposed."""
    s, dep, _ = runs
    feed = s.eval_data.batch(0, N)
    _sess(dep.int8_model, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, tmp_path / "opt.onnx")
    opt = onnx.load(str(tmp_path / "opt.onnx"))
    m = match(s.prepared.load_proto(), onnx.load(dep.int8_model), set(op_types_for(s.recipe)))
    act = {lay.node: lay.act for lay in m.layers}
    qtypes = {lay.node: act[lay.node].qtype for lay in dep.layers}
    tensors = {lay.node: lay.deployed["tensor"] for lay in dep.layers}
    d_s = _sess(_with_outputs(opt, {tensors[k]: qtypes[k] for k in tensors}), ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    dvals = dict(zip([o.name for o in d_s.get_outputs()], d_s.run(None, feed)))
    fp = s.prepared.load_proto()
    f_s = _sess(_with_outputs(fp, {lay.output: onnx.TensorProto.FLOAT for lay in dep.layers}),
                ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    fvals = dict(zip([o.name for o in f_s.get_outputs()], f_s.run(None, feed)))
    for lay in dep.layers:
        x = fvals[lay.output].astype(np.float64)
        d = dvals[tensors[lay.node]]
        if d.shape != x.shape:  # onnxruntime's x86 graph keeps conv regions channels-last
            d = d.transpose(0, 3, 1, 2)
        scale, zp = act[lay.node].scale, act[lay.node].zero_point
        y = (d.astype(np.float64) - zp) * scale
        e = y - x
        want = 10 * math.log10((x * x).sum() / (e * e).sum())
        got = lay.cumulative
        assert got.sqnr_db == pytest.approx(want, abs=1e-3), lay.node
        assert got.max_abs == pytest.approx(float(np.abs(e).max()), rel=1e-4), lay.node
        assert got.mean_error == pytest.approx(float(e.mean()), abs=1e-6), lay.node
        if x.ndim == 4:
            sx, se = (x * x).sum((0, 2, 3)), (e * e).sum((0, 2, 3))
            ok = (sx > 0) & (se > 0)  # channels with signal and error, as ``ChannelSQNR`` counts them
            ch = 10 * np.log10(sx[ok] / se[ok])
            assert got.channel_sqnr_min == pytest.approx(float(ch.min()), abs=1e-3), lay.node


def test_the_exact_simulation_is_not_run(runs, monkeypatch):
    """Deployed-only analysis never builds the exact diff engine, and says what that leaves out."""
    s, dep, _ = runs

    def tripwire(*a, **k):
        raise AssertionError("the exact diff engine was built")

    monkeypatch.setattr(analysis_mod, "DiffEngine", tripwire)
    r = analyze(s, samples=16, kernels="deployed")
    assert r.layer_kernels == "deployed" and [o.kernels for o in r.outputs] == ["deployed"]
    assert all(lay.isolated is None and lay.amplification is None for lay in r.layers)
    for lay in dep.layers:  # null, with the mode named, never an exact figure
        d = lay.deployed
        assert d["kernel_gap_db"] is None and d["lsb_diff_share"] is None and d["exact_sqnr_db"] is None
        assert "--kernels deployed" in d["not_computed"]
    assert any("skips" in n and "isolated error" in n for n in dep.notes)
    with pytest.raises(AssertionError, match="exact diff engine"):  # the other modes do need it
        analyze(s, samples=16, kernels="both")


def test_outputs_are_what_quantize_prints(runs):
    """The deployed output figures of a deployed-only analysis equal ``qwb quantize``'s (same batches, same
    plain sessions), to the last digit."""
    s, dep, _ = runs
    q = s.quantize()
    kinds = output_kinds(s.prepared.load_proto(), s.recipe, s.eval_data.labels)
    batch, _ = evaluation_batching(s.prepared.load_proto(), s.eval_data)
    assert batch >= 1
    full = analyze(s, kernels="deployed")
    want = output_agreement(s.prepared.path, q.path, s.eval_data, kinds)
    got = full.outputs_of("deployed")
    assert [o.name for o in got] == [o.name for o in want]
    for g, w in zip(got, want):
        assert (g.top1_agreement, g.accuracy_fp32, g.accuracy_int8, g.sqnr_db) == \
            (w.top1_agreement, w.accuracy_fp32, w.accuracy_int8, w.sqnr_db)


def test_json_round_trip_keeps_the_mode(runs):
    _, dep, _ = runs
    d = json.loads(json.dumps(dep.to_dict()))
    assert d["layer_kernels"] == "deployed" and all(lay["kernels"] == "deployed" for lay in d["layers"])
    assert all(lay["isolated"] is None and lay["rank_key_db"] is None for lay in d["layers"])
    back = AnalysisResult.from_dict(d)
    assert back.layer_kernels == "deployed" and back.layers[0].kernels == "deployed"
    old = dict(d)
    del old["layer_kernels"]
    assert AnalysisResult.from_dict(old).layer_kernels == "exact"  # results written before the field


def _lay(node, cum_db, introduced, isolated=None) -> LayerResult:
    m = ErrorMetrics(cum_db, None, None, 1.0, 0.99, 0.1, 0.0)
    iso = ErrorMetrics(isolated, None, None, 1.0, 0.99, 0.1, 0.0) if isolated is not None else None
    return LayerResult(node, "Conv", node, node, "int8", 0, 0, m, iso, introduced_db=introduced)


def test_flag_by_introduced_without_isolated_figures():
    """Deployed-only layers have no isolated figure: they are flagged by the SQNR they lose, worst first, where the
    result is also worse than the median layer; the isolated rule flags none of them."""
    layers = [_lay("a", 40.0, 1.0), _lay("b", 20.0, 12.0), _lay("c", 25.0, 8.0), _lay("d", 38.0, 9.0),
              _lay("e", 35.0, None)]
    assert flag([_lay(x.node, x.cumulative.sqnr_db, x.introduced_db) for x in layers], Thresholds()) == []
    got = flag(layers, Thresholds(), by="introduced")
    assert [lay.node for lay in got] == ["b", "c"]  # d loses 9 dB but stays better than the median (35 dB)
    assert [lay.node for lay in layers if lay.flagged] == ["b", "c"]


def test_cli_labels_the_deployed_layer_figures(tmp_path):
    a = qwb("analyze", "--demo", "--samples", "64", "--kernels", "deployed", "--json", tmp_path / "a.json")
    assert a.returncode == 0, a.stderr
    assert "layers   12 analysed (deployed kernels)" in a.stdout
    assert "ranked by introduced error" in a.stdout and "deployed cum. (ch)" in a.stdout
    assert "k.gap" not in a.stdout  # no exact simulation: no kernel gap column
    d = json.loads((tmp_path / "a.json").read_text())
    assert d["layer_kernels"] == "deployed"
    assert all(lay["deployed"]["kernel_gap_db"] is None for lay in d["layers"])


def test_report_of_a_deployed_only_analysis_names_the_mode(runs, tmp_path):
    """HTML and Markdown reports rank a deployed-only analysis by the SQNR lost as deployed, and say why."""
    from workbench.report.sections_results import DEPLOYED_ONLY_TEXT, layers  # noqa: PLC0415 - report internals
    from workbench.report.view import View  # noqa: PLC0415 - report internals

    _, dep, _ = runs
    doc = {"runs": [{"analysis": dep.to_dict()}]}
    html = str(layers(View(doc), 0))
    assert "cumulative SQNR dB (deployed kernels)" in html and "cumulative dB (deployed kernels)" in html
    assert "kernel gap dB (deployed)" not in html
    assert DEPLOYED_ONLY_TEXT.split(":")[0] in html


def test_markdown_report_of_a_deployed_only_analysis(runs, tmp_path):
    from workbench.report.render_md import render_markdown  # noqa: PLC0415 - report internals

    _, dep, _ = runs
    r = qwb("report", "--demo", "--samples", "32", "-o", tmp_path / "r.json", "--only")
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "r.json").read_text())
    d["runs"][d["final_run"]]["analysis"] = json.loads(json.dumps(dep.to_dict()))
    md = render_markdown(d)
    assert "**Worst layers, deployed kernels**" in md and "| cumulative (deployed) |" in md
    assert "| kernel gap (deployed) |" not in md  # no exact simulation: no kernel gap
    worst = max((lay for lay in dep.layers if lay.introduced_db is not None), key=lambda lay: lay.introduced_db)
    assert f"`{worst.node}`" in md.split("**Worst layers, deployed kernels**")[1].split("\n\n")[1].splitlines()[2]


def test_a_statistics_graph_onnxruntime_refuses_leaves_the_outputs_and_says_why(runs, monkeypatch):
    import analyzers.deployed_engine as de  # noqa: PLC0415 - the module whose session builder is made to fail
    from analyzers import pair_stats_native  # noqa: PLC0415

    s, dep, _ = runs
    monkeypatch.setenv(pair_stats_native.FORCE_GRAPH_ENV, "1")  # the graph, not the compiled passes
    real = de.build_session

    def refuse_stats(cfg, data=None):
        if data is not None and b"deployed_stats" in data:
            raise RuntimeError("refused")
        return real(cfg, data) if data is not None else real(cfg)

    monkeypatch.setattr(de, "build_session", refuse_stats)
    r = analyze(s, samples=N, kernels="deployed")
    assert [(o.top1_agreement, o.sqnr_db) for o in r.outputs] == [(o.top1_agreement, o.sqnr_db) for o in dep.outputs]
    assert all(lay.deployed is None and math.isnan(lay.cumulative.sqnr_db) for lay in r.layers)
    assert any("0 of 12 layers" in n and "could not run (RuntimeError: refused)" in n for n in r.notes)
