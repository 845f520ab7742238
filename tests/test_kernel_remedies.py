"""Explaining a deployed-vs-exact gap: the CPU's integer path, the named cause, the remedies measured as real
deployed runs. Every reference figure is computed here, with plain onnxruntime sessions on the machine running
the test: integer kernels give other numbers on CPUs with and without VNNI (run these natively and under
``scripts/emulate-x86-cpu Haswell``)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

import resources
from analyzers.diff_types import AnalysisResult
from analyzers.kernel_gap import KernelGap, gap_figure, gap_is_significant, recovered_share
from backends import cpuinfo
from backends.cpuinfo import runtime_flags, u8s8_saturates
from backends.integer_path import arm_path, integer_path, x86_path
from tests.cli_util import qwb
from tests.task_util import CancelOnCheck
from workbench.analysis import analyze
from workbench.kernel_remedies import candidates, explain_gap
from workbench.outputs import output_kinds
from workbench.session import Session

N = 160  # demo samples: enough for the saturation to show in the output SQNR, quick under emulation
REMEDY_CODES = {"kernel_remedy", "kernel_gap"}


# ---- the integer path -------------------------------------------------------------------------------------

def test_integer_path_names_every_kind_of_cpu():
    cases = {
        frozenset({"avx2"}): ("AVX2", "VPMADDUBSW", True),
        frozenset({"avx2", "avx512f", "avx512bw"}): ("AVX-512BW", "VPMADDUBSW", True),
        frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"}): ("AVX-512 VNNI", "VPDPBUSD", False),
        frozenset({"avx2", "avx_vnni"}): ("AVX-VNNI", "VPDPBUSD", False),
        frozenset({"avx2", "avx512f", "avx512_vnni", "amx_int8"}): ("AMX", "TDPBUSD", False),
        frozenset({"sse4_1"}): ("SSE4.1", "PMADDWD", False),
    }
    for flags, want in cases.items():
        p = x86_path(set(flags))
        assert (p.isa, p.instruction, p.saturates) == want, flags
        assert p.saturates == u8s8_saturates(set(flags), "x86_64")  # one rule, two views of it
    arm = {frozenset({"asimd"}): "NEON", frozenset({"asimd", "asimddp"}): "dotprod",
           frozenset({"asimd", "asimddp", "i8mm"}): "i8mm"}
    for flags, isa in arm.items():
        p = arm_path(set(flags))
        assert p.isa == isa and not p.saturates and p.arch == "aarch64"
    assert integer_path({"asimd", "asimddp"}, "aarch64").instruction == "SDOT/UDOT"
    assert integer_path(set(), "riscv64") is None


def test_emulated_cpu_loses_the_flags_cpuid_cannot_confirm(monkeypatch):
    # /proc/cpuinfo describes the host (AVX-512, AVX-VNNI); CPUID, as numpy reads it, says Haswell
    host = {"avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"}
    monkeypatch.setattr(cpuinfo, "cpuinfo_flags", lambda text=None: set(host))
    monkeypatch.setattr(cpuinfo, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpuinfo, "_numpy_cpu_features",
                        lambda: {"AVX2": True, "AVX512F": False, "AVX512BW": False, "AVX512VNNI": False})
    flags = cpuinfo.runtime_flags()
    assert flags == {"avx2"} and x86_path(flags).isa == "AVX2"
    # natively (CPUID agrees) AVX-VNNI stays
    monkeypatch.setattr(cpuinfo, "cpuinfo_flags", lambda text=None: {"avx2", "avx_vnni"})
    monkeypatch.setattr(cpuinfo, "_numpy_cpu_features", lambda: {"AVX2": True, "AVX512F": False})
    assert cpuinfo.runtime_flags() == {"avx2", "avx_vnni"}


@pytest.mark.kernels
def test_integer_path_of_this_cpu_agrees_with_the_saturation_rule():
    p = integer_path()
    assert p is not None and p.saturates == u8s8_saturates(runtime_flags())


# ---- the gap and what counts as one -----------------------------------------------------------------------

def test_gap_threshold_is_one_sample_or_one_db():
    assert not gap_is_significant("top1_agreement", 0.75, 0.75 - 1 / 64, 64)  # one sample: a rounding tie
    assert gap_is_significant("top1_agreement", 0.75, 0.75 - 2 / 64, 64)
    assert not gap_is_significant("sqnr_db", 33.3, 32.5, 64) and gap_is_significant("sqnr_db", 33.3, 18.3, 64)
    assert not gap_is_significant("top1_agreement", 0.75, 0.9, 64)  # better deployed is no gap
    assert recovered_share(0.8, 0.4, 0.7) == pytest.approx(0.75) and recovered_share(0.8, 0.8, 0.9) is None


def _plain(path, feed: dict, entries: dict | None = None, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    for k, v in (entries or {}).items():
        so.add_session_config_entry(k, v)
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {i.name: feed[i.name] for i in s.get_inputs()})[0].astype(np.float64)


def _sqnr(x, y) -> float:
    return 10 * math.log10((x * x).sum() / ((x - y) ** 2).sum())


def _figures(x, y) -> dict:
    return {"sqnr_db": _sqnr(x, y), "top1_agreement": float((x.argmax(1) == y.argmax(1)).mean())}


@pytest.fixture(scope="module")
def demo():
    s = Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL)
    r = analyze(s, samples=N, isolated=False)
    feed = s.eval_data.batch(0, N)
    return s, r, feed


@pytest.mark.kernels
def test_demo_gap_cause_and_best_remedy_follow_this_cpu(demo):
    s, r, feed = demo
    g = r.kernel_gap
    assert g is not None and g.integer_path == integer_path()
    x = _plain(s.prepared.path, feed)
    exact = _figures(x, _plain(r.int8_model, feed, level=ort.GraphOptimizationLevel.ORT_DISABLE_ALL))
    deployed = _figures(x, _plain(r.int8_model, feed))
    want = gap_figure(r.outputs_of("exact"), r.outputs_of("deployed"), N)
    # the gap figures are those of plain sessions, computed here
    assert g.exact == pytest.approx(exact[g.metric_name], abs=0.01)
    assert g.deployed == pytest.approx(deployed[g.metric_name], abs=0.01)
    assert g.significant == want[4]
    codes = {h.code for h in r.hints}
    if u8s8_saturates(runtime_flags()):
        # the cause is named, and the best remedy recovers at least two thirds of the gap
        assert g.significant and g.cause == "u8s8_saturation" and "VPMADDUBSW" in g.cause_message
        best = g.best_remedy()
        assert best is not None and best.int8_kernels and best.recovered_share >= 2 / 3
        assert "kernel_remedy" in codes and best.how in {h.suggestion for h in r.hints}
        # every remedy's figure is a real deployed run: check the session-option one with a plain session
        x64 = next(m for m in g.remedies if m.name == "x64quantprecision")
        ref = _figures(x, _plain(r.int8_model, feed, {"session.x64quantprecision": "1"}))[g.metric_name]
        assert x64.value == pytest.approx(ref, abs=0.01)
    elif not gap_is_significant(g.metric_name, exact[g.metric_name], deployed[g.metric_name], N):
        # no gap on this CPU: nothing measured, no remedy offered
        assert not g.significant and g.remedies == [] and g.best is None and g.cause is None
        assert not codes & REMEDY_CODES
    else:  # a gap without saturation: the fused kernels' own rounding
        assert g.significant and g.cause == "fused_kernels" and g.remedies


@pytest.mark.kernels
def test_remedies_are_real_deployed_runs_on_any_cpu(demo):
    """The measurement itself, forced on any CPU by handing it a deployed figure worse than the exact one."""
    s, r, feed = demo
    kinds = output_kinds(s.prepared.load_proto(), s.recipe, s.eval_data.labels)
    worse = [replace(o, sqnr_db=o.sqnr_db - 10) for o in r.outputs_of("deployed")]
    exact = r.outputs_of("exact")
    g = explain_gap(s, s.recipe, r.int8_model, kinds, True, N, 32, exact, worse)
    assert g.significant and g.metric_name == "sqnr_db"
    names = {m.name for m in g.remedies}
    assert names == {c.name for c in candidates(s.recipe, True)}
    assert names >= {"x64quantprecision", "reduce_range", "s8_activations"}
    x = _plain(s.prepared.path, feed)
    rr = next(m for m in g.remedies if m.name == "reduce_range")
    q = s.quantize(recipe=replace(s.recipe, settings=replace(s.recipe.settings, reduce_range=True)))
    assert rr.value == pytest.approx(_sqnr(x, _plain(q.path, feed)), abs=0.01)
    assert rr.recovered_share == pytest.approx((rr.value - worse[0].sqnr_db) / (exact[0].sqnr_db - worse[0].sqnr_db))
    ref = next(m for m in g.remedies if m.name == "disable_quant_qdq")
    assert not ref.int8_kernels and g.best != "disable_quant_qdq"
    assert g.best == max((m for m in g.remedies if m.int8_kernels), key=lambda m: m.value).name
    back = KernelGap.from_dict(json.loads(json.dumps(g.to_dict())))
    assert back == g


def test_remedy_measurement_can_be_cancelled(demo):
    s, r, _ = demo

    class Stop(Exception):
        pass

    kinds = output_kinds(s.prepared.load_proto(), s.recipe, s.eval_data.labels)
    worse = [replace(o, sqnr_db=o.sqnr_db - 10) for o in r.outputs_of("deployed")]
    with pytest.raises(Stop):
        explain_gap(s, s.recipe, r.int8_model, kinds, True, N, 32, r.outputs_of("exact"), worse, task=CancelOnCheck(3, Stop))


def test_json_carries_the_gap_and_reads_back(demo):
    _, r, _ = demo
    d = json.loads(json.dumps(r.to_dict()))
    g = d["kernel_gap"]
    assert set(g) >= {"integer_path", "cause", "remedies", "best", "metric_name", "exact", "deployed"}
    assert g["integer_path"]["isa"] == integer_path().isa
    assert AnalysisResult.from_dict(d).kernel_gap == r.kernel_gap
    del d["kernel_gap"]  # files written before the field read as "not measured"
    assert AnalysisResult.from_dict(d).kernel_gap is None


# ---- the command line -------------------------------------------------------------------------------------

@pytest.mark.kernels
def test_cli_prints_the_path_and_applies_session_options(tmp_path):
    a = qwb("analyze", "--demo", "--no-isolated", "--samples", str(N), "--no-remedies", "--json", tmp_path / "a.json")
    assert a.returncode == 0, a.stderr
    d = json.loads((tmp_path / "a.json").read_text())
    assert f"cpu      integer path {integer_path().label()}" in a.stdout
    assert d["kernel_gap"]["remedies"] == []  # --no-remedies: the cause only
    if d["kernel_gap"]["significant"]:
        assert "--no-remedies" in d["kernel_gap"]["skipped"] and "cause: " in a.stdout
    # the u8 x u8 path as a user deploys it: no gap left on any x86 CPU
    b = qwb("analyze", "--demo", "--no-isolated", "--samples", str(N), "--session-option",
            "session.x64quantprecision=1", "--json", tmp_path / "b.json")
    assert b.returncode == 0, b.stderr
    assert not json.loads((tmp_path / "b.json").read_text())["kernel_gap"]["significant"]
    bad = qwb("analyze", "--demo", "--session-option", "x64quantprecision")
    assert bad.returncode == 2 and "error: --session-option needs KEY=VALUE" in bad.stderr and "fix: " in bad.stderr


# ---- the report -------------------------------------------------------------------------------------------

@pytest.mark.kernels
def test_report_shows_the_path_the_gap_and_the_remedies(demo):
    from tests.report_util import Page  # noqa: PLC0415 - report helpers, only this test needs them
    from workbench.report import build_report, render_html, render_markdown  # noqa: PLC0415 - idem

    s, r, _ = demo
    report = build_report(s, analysis=r)
    page = Page(render_html(report))
    g = r.kernel_gap
    assert "kernels" in page.ids and f"{g.integer_path.isa} ({g.integer_path.instruction})" in page.all_text
    md = render_markdown(report)
    if g.significant:  # the remedies table, the best named, and the summary line in the Markdown
        assert "kernel-remedies" in page.ids and f"{g.best} (best)" in page.all_text
        assert "Kernels: deployed" in md and g.best.replace("_", "\\_") in md
    else:
        assert "kernel-remedies" not in page.ids and "No gap beyond rounding noise" in page.all_text
        assert "Kernels: deployed" not in md


def test_bench_runs_with_the_session_option(tmp_path):
    r = qwb("bench", "--demo", "--backend", "cpu", "--runs", "3", "--warmup", "1", "--no-variants",
            "--session-option", "session.x64quantprecision=1", "--json", tmp_path / "b.json")
    assert r.returncode == 0, r.stderr
    d = json.loads((tmp_path / "b.json").read_text())
    assert d["settings"]["session_options"] == {"session.x64quantprecision": "1"}
    assert d["host"]["integer_path"]["isa"] == integer_path().isa
    assert "session  session.x64quantprecision = 1" in r.stdout and "cpu      integer path " in r.stdout


def test_session_options_reach_every_benchmark_session():
    from backends.benchmark import BenchSettings, _bench_job, _inspect_job  # noqa: PLC0415 - internals under test

    class Ws:
        def path(self, stem, suffix):
            return stem + suffix

    class Cpu:
        def providers(self, threads):
            return ["CPUExecutionProvider"]

        def required_providers(self):
            return []

    s = BenchSettings(session_options={"session.x64quantprecision": "1"})
    assert _bench_job(Cpu(), "int8", "m.onnx", s, 1, Ws())["config"]["config_entries"] == s.session_options
    job = _inspect_job("int8", "m.onnx", ["CPUExecutionProvider"], 1, 1, Ws(), False, None, s.session_options)
    # the inspecting (untimed) session may add its own entries (no idle spinning); the user's must all be there
    assert s.session_options.items() <= job["config"]["config_entries"].items()


def test_a_remedy_that_cannot_run_is_reported_and_the_others_go_on(demo, monkeypatch):
    import workbench.kernel_remedies as kr  # noqa: PLC0415 - the module whose session builder is replaced

    s, r, _ = demo
    real = kr.build_session

    def build(cfg, *a, **kw):
        if cfg.config_entries.get("session.disable_quant_qdq") == "1":
            raise RuntimeError("no such kernel")
        return real(cfg, *a, **kw)

    monkeypatch.setattr(kr, "build_session", build)
    kinds = output_kinds(s.prepared.load_proto(), s.recipe, s.eval_data.labels)
    worse = [replace(o, sqnr_db=o.sqnr_db - 10) for o in r.outputs_of("deployed")]
    g = explain_gap(s, s.recipe, r.int8_model, kinds, True, N, 32, r.outputs_of("exact"), worse)
    bad = next(m for m in g.remedies if m.name == "disable_quant_qdq")
    assert bad.value is None and bad.recovered_share is None and "no such kernel" in bad.note
    assert all(m.value is not None for m in g.remedies if m.name != "disable_quant_qdq") and g.best is not None
    # a remedy the session options already apply is not measured again
    assert "x64quantprecision" not in {c.name for c in candidates(s.recipe, True, {"session.x64quantprecision": "1"})}
