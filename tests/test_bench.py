"""qwb bench and its Python API on the CPU backend, for real, on the bundled demo."""

from __future__ import annotations

import json
import platform

import numpy as np
import onnxruntime as ort
import psutil
import pytest

import resources
from backends.cpuinfo import runtime_flags, u8s8_saturates
from backends.results import ModelRun, compare_outputs, compare_variants
from backends.stats import LatencyStats
from tests.cli_util import qwb
from tests.models import conv_net, save
from workbench.bench import BenchRequest, run_bench
from workbench.errors import CancelledError, WorkbenchError

CONTRACT = {"available", "reason", "emulated", "fp32", "int8", "speedup", "int8_coverage", "model_mb"}
STATS = {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput", "rounds", "p50_p10_ms", "p50_p90_ms"}


class RecordingTask:
    def __init__(self, cancel_at: str | None = None):
        self.reports, self.cancel_at = [], cancel_at

    def report(self, fraction, message=""):
        self.reports.append((fraction, message))

    def check(self):
        if self.cancel_at and any(self.cancel_at in m for _, m in self.reports):
            raise CancelledError()


def test_latency_stats_by_hand():
    s = LatencyStats.from_seconds([0.001, 0.002, 0.003, 0.004], batch=8)
    assert (s.p50_ms, s.mean_ms) == pytest.approx((2.5, 2.5))
    assert s.p90_ms == pytest.approx(3.7) and s.p99_ms == pytest.approx(3.97)
    assert s.std_ms == pytest.approx(np.std([1, 2, 3, 4]))
    assert s.throughput == pytest.approx(8 / 0.0025)
    assert s.rounds == 0 and s.p50_p10_ms is None  # four runs make no round: no spread is claimed


def test_p50_spread_comes_from_rounds_in_timing_order():
    """35 runs: 3 rounds of 11 (the last 2 left out); the rounds' p50s are 6, 17 and 28 ms."""
    s = LatencyStats.from_seconds([i / 1e3 for i in range(1, 36)], batch=1)
    assert s.rounds == 3 and s.p50_ms == pytest.approx(18.0)
    assert (s.p50_p10_ms, s.p50_p90_ms) == pytest.approx((np.percentile([6, 17, 28], 10), np.percentile([6, 17, 28], 90)))


def _run(label, p50):
    return ModelRun(label, "m.onnx", 1, stats=[LatencyStats(1, 10, p50, p50, p50, p50, 0.0, 1e3 / p50)])


def test_variant_verdict_respects_noise():
    clear = compare_variants({"u8": _run("u8", 1.0), "s8": _run("s8", 1.5)})
    assert clear["faster"] == "u8" and clear["recommendation"].startswith("use u8: 50% faster than s8")
    noise = compare_variants({"u8": _run("u8", 1.0), "s8": _run("s8", 1.03)})
    assert noise["faster"] is None and "no measurable difference" in noise["recommendation"]
    failed = ModelRun("s8", "m.onnx", 1, failure="crashed")
    assert compare_variants({"u8": _run("u8", 1.0), "s8": failed})["recommendation"].startswith("could not compare")


@pytest.mark.kernels
def test_cpu_benchmarks_the_demo_for_real():
    task = RecordingTask()
    report = run_bench(BenchRequest(demo=True, backends=("cpu",), threads=1, batches=(1, 4), runs=20, warmup=2),
                       task)
    r = report.result("cpu")
    assert r.availability.available and r.threads == 1
    for m in (r.fp32, r.int8):
        assert m.failure is None and [s.batch for s in m.stats] == [1, 4] and all(s.runs == 20 for s in m.stats)
        for s in m.stats:
            assert 0 < s.p50_ms <= s.p90_ms <= s.p99_ms and s.std_ms >= 0
            assert s.throughput == pytest.approx(s.batch * 1e3 / s.mean_ms)
        assert m.peak_rss_bytes > 10e6  # a process that imported numpy and onnxruntime
        assert m.providers_used == ["CPUExecutionProvider"]
    assert r.speedup == pytest.approx(r.fp32.latency.p50_ms / r.int8.latency.p50_ms)
    assert r.sizes["fp32"] == resources.DEMO_MODEL.stat().st_size
    assert 0 < r.sizes["int8"] < r.sizes["fp32"]
    # the demo's INT8 graph: 6 convs and 2 Gemms in integer kernels; ReduceMean has no integer kernel
    c = r.coverage
    assert c.macs_int8_share == 1.0 and c.by_op_type["QLinearConv"] == {"int8": 6} and c.by_op_type["QGemm"] == {"int8": 2}
    assert [(f.op_type, f.fallback) for f in c.float_nodes] == [("ReduceMean", True)]
    # u8 (the default recipe) vs s8 activations, timed the same way
    assert set(r.variants) == {"u8", "s8"} and r.variants["u8"] is r.int8 and r.variants["s8"].latency
    assert r.variant_verdict["recommendation"] and set(r.variant_coverage) == {"u8", "s8"}
    if platform.machine() == "x86_64":
        # onnxruntime's x86 kernels want u8 activations; in the s8 variant the activations read by two nodes
        # (residual, branch point) keep int8, so the convs next to them run in float -- the reason to use u8 here
        s8 = r.variant_coverage["s8"]
        assert s8.macs_int8_share < 1.0
        assert any("signed (s8) activations" in f.reason for f in s8.fallbacks)
    # the figures are what onnxruntime computes on *this* CPU: recompute them here with the same settings (the
    # first batch is one calibration sample) instead of hard-coding one CPU's integer-kernel results
    x = {"image": np.load(resources.DEMO_CALIB)["image"][:1]}
    fp32, int8 = (_direct(p, x) for p in (r.fp32.path, r.int8.path))
    assert np.array_equal(r.fp32.outputs[0], fp32) and np.array_equal(r.int8.outputs[0], int8)
    assert r.numerics["int8_vs_fp32"] == compare_outputs([int8], [fp32])
    # and the INT8 model is close to FP32 where the kernels do not saturate (VNNI, ARM, or x86's u8u8 path;
    # AVX2-only CPUs saturate u8 x s8 pairs and differ by up to ~5 on this sample, see ../shared/KERNELS.md)
    exact = _direct(r.int8.path, x, {"session.x64quantprecision": "1"})
    assert 0 < np.abs(exact - fp32).max() < 2 and exact.argmax() == fp32.argmax()
    if not u8s8_saturates(runtime_flags()):
        assert np.array_equal(int8, exact)
    # progress went forward and reached the end
    fractions = [f for f, _ in task.reports]
    assert fractions[-1] == pytest.approx(1.0) and max(fractions) <= 1.0
    d = report.to_dict()["backends"]
    assert set(d) == {"cpu"} and CONTRACT <= set(d["cpu"])


def _direct(path, feed, entries=None):
    """One single-threaded run at full optimization: the bench worker's settings."""
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    for k, v in (entries or {}).items():
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def test_cancel_stops_the_benchmark_and_leaves_no_process_behind():
    task = RecordingTask(cancel_at="timing int8")
    with pytest.raises(CancelledError):
        run_bench(BenchRequest(demo=True, backends=("cpu",), threads=1, runs=200000, warmup=0,
                               compare_activation_types=False), task)
    assert not [c for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]


def test_int8_file_without_data_uses_random_inputs(tmp_path):
    model = save(conv_net(), tmp_path / "net.onnx")
    report = run_bench(BenchRequest(model=str(model), int8=str(model), backends=("cpu",), threads=1, runs=5,
                                    warmup=1))
    assert any("inputs are random" in n for n in report.notes)
    r = report.result("cpu")
    assert r.fp32.latency and r.int8.latency and r.coverage.nodes_int8 == 0
    assert r.coverage.macs_int8_share == 0.0


@pytest.mark.parametrize("req, message", [
    (BenchRequest(demo=True, backends=("cpu",), runs=0), "--runs must be at least 1"),
    (BenchRequest(demo=True, backends=("cpu",), batches=(0,)), "batch sizes must be 1 or more"),
    (BenchRequest(demo=True, backends=("cpu",), threads=-2), "--threads must be 0"),
    (BenchRequest(demo=True, backends=("cpu",), threads=100_000), "is more than 4x this machine's"),
    (BenchRequest(model="missing.onnx", int8="missing.onnx", backends=("cpu",)), "missing.onnx does not exist"),
    (BenchRequest(demo=True, backends=("cpu",), int8="x.onnx", recipe="r.toml"), "exclude each other"),
    (BenchRequest(demo=True, backends=("tpu",)), "unknown backend 'tpu'"),
])
def test_user_errors_are_workbench_errors(req, message):
    with pytest.raises(WorkbenchError, match=message.replace("(", r"\(")):
        run_bench(req)


def test_fixed_batch_model_refuses_larger_batches(tmp_path):
    model = save(conv_net(dynamic_batch=False), tmp_path / "fixed.onnx")
    with pytest.raises(WorkbenchError, match="can only run one sample at a time"):
        run_bench(BenchRequest(model=str(model), backends=("cpu",), batches=(1, 8), runs=2))


def test_qwb_bench_demo_writes_the_json_contract(tmp_path):
    out = tmp_path / "bench.json"
    r = qwb("bench", "--demo", "--backend", "all", "--runs", "10", "--warmup", "1", "--threads", "1",
            "--sysroot", tmp_path / "no-sysroot", "--json", out)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(d["backends"]) == {"cpu", "cuda", "neon", "neon-emulated"}
    for name, b in d["backends"].items():
        assert CONTRACT <= set(b), name
        assert b["emulated"] is (name == "neon-emulated")
    cpu = d["backends"]["cpu"]
    assert cpu["available"] and set(cpu["fp32"]) == STATS and set(cpu["int8"]) == STATS
    assert {"nodes_int8", "nodes_float", "macs_int8_share"} <= set(cpu["int8_coverage"])
    assert cpu["speedup"] == pytest.approx(cpu["fp32"]["p50_ms"] / cpu["int8"]["p50_ms"])
    assert cpu["model_mb"]["fp32"] == pytest.approx(resources.DEMO_MODEL.stat().st_size / 1e6)
    emu = d["backends"]["neon-emulated"]
    assert not emu["available"] and "qwb neon-setup" in emu["fix"] and emu["fp32"] is None
    assert "cpu " in r.stdout and "INT8 speedup" in r.stdout and "float fallback ReduceMean" in r.stdout


def test_qwb_bench_unavailable_backend_is_one_line_and_exit_2():
    r = qwb("bench", "--demo", "--backend", "neon")
    assert r.returncode == 2
    assert r.stderr.startswith("error: backend neon is not available here: this host is")
    assert "Traceback" not in r.stderr and "fix:" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("--batch", "one"), "--batch must be whole numbers"),
    (("--runs", "0"), "--runs must be at least 1"),
    (("--arm-cpu", "m1"), "unknown emulated ARM CPU 'm1'"),
])
def test_qwb_bench_bad_numbers(args, message):
    r = qwb("bench", "--demo", "--backend", "cpu", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_qwb_bench_bad_model_path():
    r = qwb("bench", "nope.onnx", "--int8", "nope.onnx", "--backend", "cpu")
    assert r.returncode == 2 and "nope.onnx does not exist" in r.stderr


def test_qwb_bench_exits_non_zero_when_a_model_fails_to_run(tmp_path):
    model = save(conv_net(), tmp_path / "net.onnx")
    broken = conv_net()
    broken.graph.node[-1].input[0] = "nobody_makes_this"  # loads as ONNX, onnxruntime refuses it
    int8 = save(broken, tmp_path / "broken.onnx")
    r = qwb("bench", model, "--int8", int8, "--backend", "cpu", "--runs", "2", "--warmup", "0", "--no-variants")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "FAILED   int8" in r.stdout and "1 model run(s) failed: cpu int8" in r.stderr
