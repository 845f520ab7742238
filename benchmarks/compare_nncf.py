"""Benchmark: `qwb tune` against NNCF's `quantize_with_accuracy_control` (ONNX) on the same models and target
(issue 14, "How it will be checked").

    nice -n 10 .venv/bin/python benchmarks/compare_nncf.py [CASE ...] [--json OUT]

CASEs (default: all): planted6, planted10 (tests/tune_models.py's planted-bad-layer CNNs) and mobilenetv2_64
(benchmarks/models.py's MobileNetV2 at 64x64, random seeded weights). Each case has three disjoint data sets:
calibration (both tools calibrate on it), evaluation (qwb tune searches on two thirds of it and verifies on the
last third; NNCF's validation function runs on all of it) and a test set neither tool ever sees, on which both
results are measured with the project's own metric code. The target compares with FP32 (`--target cosine>=X` or
`top1_agreement>=X`); NNCF gets a validation function returning the same figure (FP32 scores 1.0) with
``max_drop = 1 - X`` absolute, and per-sample values, so it ranks its groups by that metric too.

NNCF is installed only for this script, into its own venv (``$QWB_CACHE_DIR`` or ~/.cache/quant-workbench,
``bench-nncf-venv``: ``python -m venv`` + ``pip install nncf onnx onnxruntime==<ours>``), never into the project.
Its side runs in benchmarks/nncf_child.py inside that venv.

Reported per tool: the metric on the test set, latency of the resulting model (one sample, onnxruntime CPU with
all optimizations, 1 intra-op thread, the same harness for both, interleaved rounds, median), evaluations (qwb:
candidate evaluations on a part of the evaluation set; NNCF: validation-function calls, on the whole set or its
ranking subset), process wall time (cold: calibration included), and compute layers (Conv/Gemm/MatMul) left in
float (and in 16-bit). Figures go to docs/benchmarks.md (Tune).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

from analyzers.output_metrics import OutputAccumulator  # noqa: E402
from backends.runner import SessionConfig, build_session  # noqa: E402
from benchmarks.models import image_data, mobilenet_onnx  # noqa: E402
from tests.tune_models import planted_cnn, planted_data  # noqa: E402
from workbench.outputs import output_kinds  # noqa: E402
from workbench.recipe import Recipe  # noqa: E402
from workbench.tune.target import parse_target  # noqa: E402

COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
LATENCY_ROUNDS, LATENCY_RUNS = 7, 30
WIDE = {onnx.TensorProto.INT16, onnx.TensorProto.UINT16}


def nncf_python() -> Path:
    """The benchmark's own venv with nncf (created on first use)."""
    base = Path(os.environ.get("QWB_CACHE_DIR") or Path.home() / ".cache" / "quant-workbench")
    venv = base / "bench-nncf-venv"
    py = venv / "bin" / "python"
    if not (py.exists() and subprocess.run([str(py), "-c", "import nncf"], capture_output=True).returncode == 0):
        print(f"installing nncf into {venv} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "nncf", "onnx", f"onnxruntime=={ort.__version__}"],
                       check=True)
    return py


def _planted(layers, planted, seed):
    def build(d: Path):
        onnx.save(planted_cnn(layers=layers, planted=planted, seed=seed), str(d / "model.onnx"))
        for name, n, s in (("calib", 32, 1), ("eval", 96, 2), ("test", 96, 3)):
            np.savez(d / f"{name}.npz", **planted_data(n, seed=s))
    return build


def _mobilenet(size):
    def build(d: Path):
        (d / "model.onnx").write_bytes(mobilenet_onnx(size).read_bytes())
        for name, n, s in (("calib", 32, 1), ("eval", 96, 2), ("test", 96, 3)):
            with np.load(image_data(n, size, seed=s)) as z:
                np.savez(d / f"{name}.npz", image=z["image"])  # no labels: the target is agreement with FP32
    return build


CASES = {  # name -> (builder, target); the planted CNNs' top-1 class barely varies over random inputs, so their
    # target is the cosine (tests/test_tune.py's); the MobileNet's full INT8 agrees on 99% of top-1 classes already
    "planted6": (_planted(6, (2, 4), 0), "cosine>=0.995"),
    "planted10": (_planted(10, (2, 6), 1), "cosine>=0.995"),
    "mobilenetv2_64": (_mobilenet(64), "cosine>=0.99998"),  # full INT8: 0.99995 (39.6 dB)
    "mobilenetv2_64_met": (_mobilenet(64), "top1_agreement>=0.95"),  # full INT8 meets it: who stops at once
}


def _cpu() -> float:
    """CPU seconds used by every finished child process (and theirs): robust to other load on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


QWB_ARGS = {"qwb": [], "qwb_macs": ["--objective", "int8_macs"]}


def _qwb(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)


def run_qwb(d: Path, target: str, tool: str, extra: list[str]) -> dict:
    env = dict(os.environ, QWB_CACHE_DIR=str(d / f"{tool}-cache"))  # cold: calibration is part of the wall time
    t, cpu = time.perf_counter(), _cpu()
    p = _qwb("tune", str(d / "model.onnx"), "--calib", str(d / "calib.npz"), "--eval", str(d / "eval.npz"),
             "--target", target, *extra, "-o", str(d / f"{tool}.toml"), "--json", str(d / f"{tool}.json"), env=env)
    wall, cpu = time.perf_counter() - t, _cpu() - cpu
    (d / f"{tool}.log").write_text(p.stdout + p.stderr)
    if not (d / f"{tool}.toml").exists():
        raise RuntimeError(f"qwb tune wrote no recipe (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    r = json.loads((d / f"{tool}.json").read_text())
    q = _qwb("quantize", str(d / "model.onnx"), "--calib", str(d / "calib.npz"), "--recipe", str(d / f"{tool}.toml"),
             "-o", str(d / f"{tool}.onnx"), "--no-eval", env=env)
    if q.returncode:
        raise RuntimeError(f"qwb quantize failed:\n{q.stdout[-2000:]}\n{q.stderr[-2000:]}")
    b = r["best"]
    return {"wall_s": wall, "cpu_s": cpu, "evaluations": r["evaluations"], "val_metric": b["holdout_metric"],
            "search_metric": b["search_metric"], "label": b["label"], "met_val": b["met_holdout"],
            "model": str(d / f"{tool}.onnx"), "rc": p.returncode, "args": " ".join(extra)}


def run_nncf(d: Path, target: str, py: Path) -> dict:
    t = parse_target(target)
    job = {"model": str(d / "model.onnx"), "calib": str(d / "calib.npz"), "eval": str(d / "eval.npz"),
           "output": str(d / "nncf.onnx"), "result": str(d / "nncf.json"), "max_drop": round(1.0 - t.value, 9),
           "metric": t.metric,
           "threads": os.cpu_count() or 1}
    (d / "nncf-job.json").write_text(json.dumps(job))
    start, cpu = time.perf_counter(), _cpu()
    p = subprocess.run([str(py), str(ROOT / "benchmarks" / "nncf_child.py"), str(d / "nncf-job.json")],
                       capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    (d / "nncf.log").write_text(p.stdout + p.stderr)
    if p.returncode:
        raise RuntimeError(f"NNCF failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    r = json.loads((d / "nncf.json").read_text())
    return {"wall_s": wall, "cpu_s": cpu, "evaluations": r["validation_calls"], "val_metric": r["val_metric"],
            "model": job["output"], "nncf": r["nncf"], "call_s": r["seconds"],
            "validation_samples": r["validation_samples"]}


def _deployed(path: str):
    return build_session(SessionConfig.for_purpose("deployed", path, threads=1))


def test_metric(d: Path, model: str, target: str) -> float | None:
    """The target's metric of ``model`` against FP32 on the test set, computed by the project's own code."""
    t = parse_target(target)
    fp32 = onnx.load(str(d / "model.onnx"))
    kinds = output_kinds(fp32, Recipe(), None)
    with np.load(d / "test.npz") as z:
        arrays = {k: z[k] for k in z.files}
    a, b = _deployed(str(d / "model.onnx")), _deployed(model)
    names = [o.name for o in a.get_outputs()]
    acc = {nm: OutputAccumulator(kinds[nm]) for nm in names}
    n = len(next(iter(arrays.values())))
    for i in range(n):  # one sample at a time: both models take any batch, this keeps the kernels' batch the same
        feed = {k: v[i:i + 1] for k, v in arrays.items()}
        for nm, x, y in zip(names, a.run(names, feed), b.run(names, feed)):
            acc[nm].update(x, y)
    return t.measure([acc[nm].result() for nm in names])


def latencies(d: Path, models: dict[str, str]) -> dict[str, float]:
    """Milliseconds per sample of each model, one intra-op thread; rounds interleave the models so a burst of
    load on the shared machine hits all of them; the median of the rounds' medians."""
    with np.load(d / "test.npz") as z:
        feed = {k: z[k][:1] for k in z.files}
    sess = {k: _deployed(p) for k, p in models.items()}
    rounds = {k: [] for k in models}
    for s in sess.values():
        s.run(None, feed)
    for _ in range(LATENCY_ROUNDS):
        for k, s in sess.items():
            ts = []
            for _ in range(LATENCY_RUNS):
                t = time.perf_counter()
                s.run(None, feed)
                ts.append(time.perf_counter() - t)
            rounds[k].append(statistics.median(ts))
    return {k: 1e3 * statistics.median(v) for k, v in rounds.items()}


def precision_of_layers(path: str) -> dict[str, str]:
    """Each compute node (Conv/Gemm/MatMul) -> int8 | int16 | float: it runs on integer kernels only when both its
    data input and its weights arrive through DequantizeLinear (16-bit when either is a 16-bit tensor); a float
    weight or a float input keeps it in float whatever Q/DQ sits around it. The same rule for both tools' models."""
    m = onnx.load(path, load_external_data=False)
    producer = {o: n for n in m.graph.node for o in n.output}
    inits = {i.name: i for i in m.graph.initializer}

    def bits(tensor: str) -> str | None:
        dq = producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        src = inits.get(dq.input[0])
        q = producer.get(dq.input[0])
        zp = inits.get(dq.input[2]) if len(dq.input) > 2 else None
        if zp is None and q is not None and q.op_type == "QuantizeLinear" and len(q.input) > 2:
            zp = inits.get(q.input[2])
        kind = src.data_type if src is not None else (zp.data_type if zp is not None else None)
        return "int16" if kind in WIDE else "int8"

    out = {}
    for n in m.graph.node:
        if n.op_type in COMPUTE:
            got = [bits(t) for t in n.input[:2]]
            out[n.name] = "float" if None in got else ("int16" if "int16" in got else "int8")
    return out


INTEGER_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "DynamicQuantizeMatMul"}


def deployed_integer_layers(path: str) -> int:
    """Compute layers onnxruntime actually runs on integer kernels (read from the graph it optimizes to): a Q/DQ
    pattern its fusions do not recognise runs as DequantizeLinear + a float kernel."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SessionConfig.for_purpose("deployed", path, threads=1)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(cfg.model, so, providers=["CPUExecutionProvider"])
        m = onnx.load(so.optimized_model_filepath, load_external_data=False)
    return sum(n.op_type in INTEGER_OPS for n in m.graph.node)


def compare(name: str, py: Path) -> dict:
    build, target = CASES[name]
    d = Path(tempfile.mkdtemp(prefix=f"qwb-vs-nncf-{name}-"))
    build(d)
    print(f"== {name}: target {target}, work in {d}", flush=True)
    res = {"case": name, "target": target, "dir": str(d)}
    tools = ["qwb"] + (["qwb_macs"] if name.startswith("planted") else [])
    for tool in tools:  # the planted cases also with --objective int8_macs (the planted-set check of issue 14)
        res[tool] = run_qwb(d, target, tool, QWB_ARGS[tool])
        print(f"   qwb tune {res[tool]['args']}: {res[tool]['wall_s']:.1f} s, {res[tool]['evaluations']} evaluations, "
              f"{res[tool]['label']}", flush=True)
    res["nncf"] = run_nncf(d, target, py)
    print(f"   NNCF: {res['nncf']['wall_s']:.1f} s, {res['nncf']['evaluations']} validation calls", flush=True)
    tools.append("nncf")
    lat = latencies(d, dict({"fp32": str(d / "model.onnx")}, **{k: res[k]["model"] for k in tools}))
    res["fp32_latency_ms"] = lat["fp32"]
    for tool in tools:
        r = res[tool]
        r["test_metric"] = test_metric(d, r["model"], target)
        r["met_test"] = parse_target(target).met(r["test_metric"])
        r["latency_ms"] = lat[tool]
        prec = precision_of_layers(r["model"])
        r["float_layers"] = sorted(k for k, v in prec.items() if v == "float")
        r["int16_layers"] = sorted(k for k, v in prec.items() if v == "int16")
        r["compute_layers"] = len(prec)
        r["deployed_integer"] = deployed_integer_layers(r["model"])
    return res


def table(results: list[dict]) -> str:
    rows = ["| model (compute layers) | target | tool | test metric (96 unseen) | met | validation metric | "
            "latency ms (FP32) | evaluations | wall s (CPU s) | layers in float / 16-bit | run on integer kernels |",
            "|---|---|---|--:|:-:|--:|--:|--:|--:|---|--:|"]
    for res in results:
        digits = 6 if res["target"].startswith("cosine") else 4
        for tool in [k for k in ("qwb", "qwb_macs", "nncf") if k in res]:
            r = res[tool]
            label = f"NNCF {r['nncf']}" if tool == "nncf" else f"qwb tune {r['args']}".strip()
            fl = ", ".join(r["float_layers"]) or "none"
            wide = f" / {', '.join(r['int16_layers'])}" if r["int16_layers"] else " / none"
            ev = str(r["evaluations"]) + (f" ({r['validation_samples']} samples)" if tool == "nncf" else "")
            rows.append(f"| {res['case']} ({r['compute_layers']}) | {res['target']} | {label} | "
                        f"{r['test_metric']:.{digits}f} | {'yes' if r['met_test'] else 'no'} | "
                        f"{r['val_metric']:.{digits}f} | "
                        f"{r['latency_ms']:.3f} ({res['fp32_latency_ms']:.3f}) | {ev} | "
                        f"{r['wall_s']:.0f} ({r['cpu_s']:.0f}) | "
                        f"{len(r['float_layers'])}: {fl}{wide} | {r['deployed_integer']} |")
    return "\n".join(rows)


def main(argv: list[str]) -> None:
    out = argv[argv.index("--json") + 1] if "--json" in argv else None
    names = [a for a in argv if a in CASES] or list(CASES)
    py = nncf_python()
    results = []
    for name in names:
        results.append(compare(name, py))
        if out:
            Path(out).write_text(json.dumps(results, indent=2))
    print(f"\nonnxruntime {ort.__version__}; {os.cpu_count()} CPUs\n")
    print(table(results))


if __name__ == "__main__":
    main(sys.argv[1:])
