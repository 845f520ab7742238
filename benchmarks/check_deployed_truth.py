"""Check issue 12's "How it will be checked" claims on this CPU, through the public qwb CLI and plain onnxruntime.

    python benchmarks/check_deployed_truth.py [demo] [tf_cnn_op13] [tf_cnn_op17] [mobilenet]          # natively
    scripts/emulate-x86-cpu Haswell -- .venv/bin/python benchmarks/check_deployed_truth.py             # AVX2-only

Per model: `qwb quantize` writes the INT8 model, `qwb analyze --json` (both modes, remedies measured, no isolated
error) gives its figures, and this script builds its own plain onnxruntime sessions on the same files and samples
(FP32 with default optimizations; INT8 with default optimizations = what ships, and with optimizations off =
Q/DQ as written). Claims (the issue's words):
  deployed  qwb's deployed top-1 agreement equals the plain default-optimizations session's within one sample
  exact     qwb's exact top-1 agreement equals the optimizations-off session's
  cause     where the plain sessions show a gap (deployed worse than exact by more than one sample or 1 dB of
            output SQNR, the product's threshold) qwb names it, and names u8 x s8 saturation exactly where this
            CPU's integer path saturates (AVX2 / AVX-512BW without VNNI); where there is none qwb names none
  remedies  (beyond the issue) each remedy's figure qwb prints equals that remedy applied here by hand
  remedy    the remedy qwb suggests, applied here by hand (the session option on a plain session, or the recipe
            change through `qwb quantize --recipe`), recovers at least two thirds of the gap in the figure qwb
            judged it by
  modes     (demo only) `quantize`, `analyze` and `report` print the same accuracy per mode
Prints a table and exits 1 when a claim fails. Every qwb command runs in a child process with its own fresh
cache (``QWB_CACHE_DIR``), so nothing computed on another CPU is reused. Models: the bundled demo (all 500
evaluation samples), the zoo's TF-style CNNs (tests/zoo, all 48 samples), the 96-px MobileNetV2 of
benchmarks/models.py (calibrated on ``--mobilenet-calib`` images, first ``--mobilenet-samples`` evaluated).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import resources  # noqa: E402
from backends.integer_path import integer_path  # noqa: E402

SQNR_GAP_DB = 1.0  # the product's threshold for an output-SQNR gap (analyzers/kernel_gap.py), restated here
BATCH = 32


@dataclass
class Model:
    name: str
    model: Path
    calib: Path
    eval: Path
    samples: int | None  # None: all evaluation samples
    demo: bool = False


@dataclass
class Row:
    model: str
    claims: dict[str, str] = field(default_factory=dict)  # claim -> "ok ..." / "FAIL ..." / "n/a ..."
    figures: dict[str, str] = field(default_factory=dict)

    def failed(self) -> list[str]:
        return [k for k, v in self.claims.items() if v.startswith("FAIL")]


def models(names: list[str], args) -> list[Model]:
    out = []
    if "demo" in names:
        out.append(Model("demo", Path(resources.DEMO_MODEL), Path(resources.DEMO_CALIB), Path(resources.DEMO_EVAL),
                         None, demo=True))
    for z in ("tf_cnn_op13", "tf_cnn_op17"):
        if z in names:
            from tests.zoo import build  # noqa: PLC0415 - only these models need the zoo

            p = build(z)
            out.append(Model(z, p.model, p.calib, p.eval, None))
    if "mobilenet" in names:
        from benchmarks.models import image_data, mobilenet_onnx  # noqa: PLC0415 - torch export, only here

        out.append(Model("mobilenetv2_96", mobilenet_onnx(96), image_data(args.mobilenet_calib),
                         image_data(64, seed=1), args.mobilenet_samples))
    return out


def qwb(env: dict, *argv) -> subprocess.CompletedProcess:
    """A qwb command as a user runs it (its own process: under emulation, the same emulated CPU)."""
    e = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    p = subprocess.run([sys.executable, "-m", "workbench.cli.main", *map(str, argv)], cwd=ROOT, capture_output=True,
                       text=True, env=e, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"qwb {' '.join(map(str, argv))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def model_args(m: Model) -> list:
    return ["--demo"] if m.demo else [m.model, "--calib", m.calib, "--eval", m.eval]


def plain_outputs(path: Path, feed: dict, level, entries: dict | None = None) -> np.ndarray:
    """The first output of a plain onnxruntime CPU session over ``feed``, in batches of ``BATCH``."""
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    for k, v in (entries or {}).items():
        so.add_session_config_entry(k, v)
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in s.get_inputs()]
    n = len(feed[names[0]])
    return np.concatenate([s.run(None, {k: feed[k][a:a + BATCH] for k in names})[0] for a in range(0, n, BATCH)])


def figures(x: np.ndarray, y: np.ndarray) -> dict:
    x, y = x.astype(np.float64), y.astype(np.float64)
    agree = x.argmax(-1) == y.argmax(-1)
    err = ((x - y) ** 2).sum()
    return {"top1_agreement": float(agree.mean()), "agree": int(agree.sum()),
            "sqnr_db": math.inf if err == 0 else 10 * math.log10((x * x).sum() / err)}


def gap_of(metric: str, exact: float, deployed: float, n: int) -> bool:
    """Deployed worse than exact beyond rounding noise (the same threshold the product states)."""
    if metric == "sqnr_db":
        return exact - deployed >= SQNR_GAP_DB
    return exact - deployed > 1.0 / n + 1e-9


def fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.1f} dB" if metric == "sqnr_db" else f"{100 * v:.1f}%"


def check_model(m: Model, work: Path, env: dict, saturates: bool) -> Row:
    row = Row(m.name)
    q = work / f"{m.name}.int8.onnx"
    qwb(env, "quantize", *model_args(m), "-o", q, "--no-eval")
    a_json = work / f"{m.name}.analyze.json"
    samples = ["--samples", m.samples] if m.samples else []
    a = qwb(env, "analyze", *model_args(m), *samples, "--no-isolated", "--no-measure-hints", "--kernels", "both",
            "--json", a_json)
    d = json.loads(a_json.read_text())
    outs = {o["kernels"]: o for o in reversed(d["outputs"])}  # the first output of each mode
    same_model = Path(d["int8_model"]).read_bytes() == q.read_bytes() if d.get("int8_model") else None

    data = dict(np.load(m.eval))
    n = d["samples"]
    names = [i.name for i in onnx.load(str(m.model)).graph.input]
    feed = {k: data[k][:n] for k in names if k in data}
    lv = ort.GraphOptimizationLevel
    fp32 = plain_outputs(m.model, feed, lv.ORT_ENABLE_ALL)
    plain = {"deployed": figures(fp32, plain_outputs(q, feed, lv.ORT_ENABLE_ALL)),
             "exact": figures(fp32, plain_outputs(q, feed, lv.ORT_DISABLE_ALL))}
    for mode in ("exact", "deployed"):
        o, p = outs[mode], plain[mode]
        row.figures[mode] = (f"qwb {fmt('t', o['top1_agreement'])} / {fmt('sqnr_db', o['sqnr_db'])}; plain "
                             f"{fmt('t', p['top1_agreement'])} / {fmt('sqnr_db', p['sqnr_db'])}")
        diff = round(abs(o["top1_agreement"] - p["top1_agreement"]) * n)
        allowed = 1 if mode == "deployed" else 0
        row.claims[mode] = (f"{'ok' if diff <= allowed else 'FAIL'} {diff} sample(s) apart "
                            f"(allowed {allowed}; SQNR {o['sqnr_db'] - p['sqnr_db']:+.2f} dB)")

    # cause: judged on the plain sessions' own figures, then compared with what qwb says
    g = d.get("kernel_gap") or {}
    e, dp = plain["exact"], plain["deployed"]
    plain_gap = next((f for f in ("top1_agreement", "sqnr_db") if gap_of(f, e[f], dp[f], n)), None)
    cause = g.get("cause")
    named_in_console = "cause: u8s8_saturation" in a.stdout and any("VPMADDUBSW" in h.get("message", "")
                                                                      for h in d.get("hints", []))
    if plain_gap is None:
        ok = not g.get("significant") and cause is None
        row.claims["cause"] = f"{'ok' if ok else 'FAIL'} no gap in plain sessions; qwb cause {cause}"
    else:
        want = "u8s8_saturation" if saturates else "fused_kernels"
        ok = g.get("significant") and cause == want and (named_in_console or not saturates)
        row.claims["cause"] = (f"{'ok' if ok else 'FAIL'} plain gap on {plain_gap} ({fmt(plain_gap, e[plain_gap])} -> "
                               f"{fmt(plain_gap, dp[plain_gap])}); qwb cause {cause} on {g.get('metric_name')}"
                               f"{', VPMADDUBSW in its hint' if named_in_console else ''}")

    # remedy: the suggested one, applied here by hand, recovers >= 2/3 of the gap; every remedy's printed figure
    # equals the same remedy applied by hand (within one sample, 0.05 dB)
    best = g.get("best")
    if not g.get("significant"):
        row.claims["remedy"] = "n/a no gap"
        return _modes(row, m, work, env, d, same_model)
    metric = g["metric_name"]
    by_hand, checked = {}, []
    for r in g.get("remedies", []):
        if not r["int8_kernels"] or r["value"] is None:
            continue
        by_hand[r["name"]] = v = figures(fp32, remedy_outputs(r["name"], m, q, feed, work, env))[metric]
        tol = 0.05 if metric == "sqnr_db" else 1.0 / n + 1e-9
        ok = abs(v - r["value"]) <= tol
        checked.append(f"{'' if ok else 'FAIL '}{r['name']} qwb {fmt(metric, r['value'])} here {fmt(metric, v)}")
    row.claims["remedies"] = ("FAIL " if any(c.startswith("FAIL") for c in checked) else "ok ") + "; ".join(checked)
    if best is None:
        row.claims["remedy"] = "FAIL a gap but no remedy suggested"
    else:
        value = by_hand[best]
        share = (value - dp[metric]) / (e[metric] - dp[metric]) if e[metric] != dp[metric] else float("nan")
        qwb_share = next((r["recovered_share"] for r in g["remedies"] if r["name"] == best), None)
        row.claims["remedy"] = (f"{'ok' if share >= 2 / 3 else 'FAIL'} {best}: {fmt(metric, value)}, recovers "
                                f"{share:.0%} of the gap here (qwb says "
                                f"{'-' if qwb_share is None else f'{qwb_share:.0%}'})")
    return _modes(row, m, work, env, d, same_model)


def remedy_outputs(name: str, m: Model, q: Path, feed: dict, work: Path, env: dict) -> np.ndarray:
    """The INT8 outputs with remedy ``name`` applied as a user would: the session option on a plain session, or
    the recipe change through `qwb quantize --recipe` and a plain default-optimizations session."""
    lv = ort.GraphOptimizationLevel
    if name == "x64quantprecision":
        return plain_outputs(q, feed, lv.ORT_ENABLE_ALL, {"session.x64quantprecision": "1"})
    setting = {"reduce_range": "reduce_range = true", "s8_activations": 'activation_type = "s8"'}[name]
    recipe = work / f"{m.name}.{name}.toml"
    recipe.write_text(f"[global]\n{setting}\n")
    rq = work / f"{m.name}.{name}.int8.onnx"
    qwb(env, "quantize", *model_args(m), "--recipe", recipe, "-o", rq, "--no-eval")
    return plain_outputs(rq, feed, lv.ORT_ENABLE_ALL)


def _modes(row: Row, m: Model, work: Path, env: dict, d: dict, same_model: bool | None) -> Row:
    """The last claims: one INT8 model behind quantize and analyze; on the demo, the same figure per mode."""
    if same_model is False:
        row.claims["same INT8"] = "FAIL quantize and analyze wrote different INT8 models"
    if m.demo:
        row.claims["modes"] = check_modes(m, work, env, d)
    return row


ACC = re.compile(r"^accuracy FP32 ([\d.]+)%  INT8 ([\d.]+)%.*\((exact|deployed) kernels: ")


def check_modes(m: Model, work: Path, env: dict, d: dict) -> str:
    """quantize, analyze and report print the same FP32 / INT8 accuracy per mode (all evaluation samples)."""
    got: dict[str, dict[str, tuple[str, str]]] = {"quantize": {}, "report": {}, "analyze": {}}
    qo = qwb(env, "quantize", *model_args(m), "-o", work / "modes.int8.onnx")
    ro = qwb(env, "report", *model_args(m), "-o", work / "report.html")
    for cmd, out in (("quantize", qo.stdout), ("report", ro.stdout)):
        for line in out.splitlines():
            hit = ACC.match(line)
            if hit:
                got[cmd][hit.group(3)] = (hit.group(1), hit.group(2))
    for o in d["outputs"]:
        if o.get("accuracy_int8") is not None and o["kernels"] not in got["analyze"]:
            got["analyze"][o["kernels"]] = (f"{100 * o['accuracy_fp32']:.2f}", f"{100 * o['accuracy_int8']:.2f}")
    parts, ok = [], bool(got["quantize"]) and len(got["report"]) == 2
    for mode in ("exact", "deployed"):
        seen = {c: v[mode] for c, v in got.items() if mode in v}
        ok = ok and len(set(seen.values())) == 1 and "analyze" in seen
        parts.append(f"{mode}: " + ", ".join(f"{c} {v[1]}%" for c, v in seen.items()))
    return f"{'ok' if ok else 'FAIL'} INT8 accuracy " + "; ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", default=["demo", "tf_cnn_op13", "tf_cnn_op17", "mobilenet"])
    ap.add_argument("--mobilenet-calib", type=int, default=128, help="calibration images (default 128)")
    ap.add_argument("--mobilenet-samples", type=int, default=32, help="evaluated images (default 32)")
    args = ap.parse_args()
    path = integer_path()
    saturates = bool(path and path.saturates)
    print(f"integer path: {path.label() if path else '?'}; onnxruntime {ort.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="qwb-truth-") as tmp:
        work = Path(tmp)
        env = {"QWB_CACHE_DIR": str(work / "cache")}
        for m in models(args.models, args):
            row = check_model(m, work, env, saturates)
            rows.append(row)
            print(f"{m.name}: " + "; ".join(f"{k} {v}" for k, v in row.figures.items()), flush=True)
            for k, v in row.claims.items():
                print(f"  {k:<9} {v}", flush=True)
    claims = list(dict.fromkeys(k for r in rows for k in r.claims))
    print("\n| model | exact (qwb / plain, top-1 / SQNR) | deployed (qwb / plain) | " + " | ".join(claims) + " |")
    print("|---|---|---|" + "---|" * len(claims))
    for r in rows:
        print(f"| {r.model} | {r.figures['exact']} | {r.figures['deployed']} | "
              + " | ".join(r.claims.get(k, "") for k in claims) + " |")
    failed = [(r.model, k) for r in rows for k in r.failed()]
    print("\nall claims hold" if not failed else "FAILED: " + ", ".join(f"{m} {k}" for m, k in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
