"""Benchmark: exact vs deployed figures per recipe / session option on this CPU, and what measuring the remedies costs.

    python benchmarks/kernel_remedies.py [demo] [tf_cnn] [mobilenet]          # natively
    scripts/emulate-x86-cpu Haswell -- .venv/bin/python benchmarks/kernel_remedies.py   # as an AVX2-only CPU

For each model: the default recipe (u8 activations, s8 per-channel weights), the same run with
session.x64quantprecision = 1, reduce_range = true, and activation_type = "s8"; exact and deployed top-1
agreement and output SQNR of each (no isolated error), then one default `analyze` with the remedy measurement,
and its cost. Models: the demo (N = 500), the zoo's TF-style CNN (tests/zoo, all 48 samples) and the MobileNetV2
of benchmarks/models.py (3x96x96, N = 32). Figures go to docs/benchmarks.md (Kernel gap and remedies).
"""

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import resources  # noqa: E402
from backends.integer_path import integer_path  # noqa: E402
from workbench.analysis import analyze  # noqa: E402
from workbench.session import Session  # noqa: E402


def models(names):
    if "demo" in names:
        yield "demo", Session(resources.DEMO_MODEL, resources.DEMO_CALIB, resources.DEMO_EVAL), 500
    if "tf_cnn" in names:
        from tests.zoo import build  # noqa: PLC0415 - only this model needs the zoo

        z = build("tf_cnn_op13")
        yield "zoo tf_cnn_op13", Session(z.model, z.calib, z.eval), 48
    if "mobilenet" in names:
        from benchmarks.models import image_data, mobilenet_onnx  # noqa: PLC0415 - torch export, only here

        yield "mobilenetv2_96", Session(mobilenet_onnx(96), image_data(128), image_data(64, seed=1)), 32


def figures(r):
    out = {}
    for o in r.outputs[:2] if len(r.outputs) == 2 else r.outputs:
        out[o.kernels] = f"{100 * o.top1_agreement:.1f}% / {o.sqnr_db:.1f} dB"
    return out


def main(names):
    p = integer_path()
    print(f"integer path: {p.label() if p else '?'}", flush=True)
    for name, s, n in models(names):
        rec = s.recipe
        variants = [("u8 (default)", rec, None), ("u8 + session.x64quantprecision=1", rec, {"session.x64quantprecision": "1"}),
                    ("u8 + reduce_range", replace(rec, settings=replace(rec.settings, reduce_range=True)), None),
                    ("s8 activations", replace(rec, settings=replace(rec.settings, activation_type="s8")), None)]
        for label, recipe, opts in variants:
            r = analyze(s, recipe=recipe, samples=n, isolated=False, remedies=False, session_options=opts)
            f = figures(r)
            print(f"| {name}, {n} | {label} | {f['exact']} | {f['deployed']} |", flush=True)
        t = time.perf_counter()
        r = analyze(s, samples=n, isolated=False)
        total = time.perf_counter() - t
        g = r.kernel_gap
        rem = ", ".join(f"{m.name} {m.value:.4g} ({100 * m.recovered_share:.0f}%)" for m in g.remedies
                        if m.value is not None and m.recovered_share is not None)
        print(f"  {name}: gap on {g.metric_name}: exact {g.exact:.4g} deployed {g.deployed:.4g} significant "
              f"{g.significant} cause {g.cause} best {g.best}; remedies: {rem or '-'}; analyze {total:.2f} s of which "
              f"remedies {r.timings.get('kernel_remedies_s', 0):.2f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["demo", "tf_cnn", "mobilenet"])
