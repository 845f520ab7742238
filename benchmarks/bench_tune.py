"""Benchmark: `qwb tune` speed. All-group sensitivity of a 100-layer CNN (target: <= 60 s on the 2-core dev VM)
and the whole `qwb tune --demo` (target: <= 30 s).

    python benchmarks/bench_tune.py [sensitivity|demo|both] [--reps N]

The CNN is tests/tune_models.planted_cnn(layers=100, planted=(30, 70)) at 3x8x8 with 8 channels, 32
calibration and 48 evaluation samples (32 searched, 16 held back); calibration is cached beforehand, so the
figure is the tune run itself: one analysis pass for the isolated errors plus, per group, the revert-one
moves (16-bit, float; a percentile or method only where it changes a range the group reads) for the groups that
carry 95% of the error and one quantize-one probe per group, in 2 local worker processes. Medians of --reps. (At this depth the two planted layers, 0 dB isolated, no
longer move the output and full INT8 meets 25 dB; the target, 200 dB, is out of reach of 8 bits so that
every group is measured: a target full INT8 meets is answered without any group probe.)
Figures go to docs/benchmarks.md (Tune).
"""

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

from tests.tune_models import planted_cnn, planted_data  # noqa: E402
from workbench.session import SessionSpec, open_session  # noqa: E402
from workbench.tune.search import TuneSpec, run_tune  # noqa: E402
from workbench.tune.target import parse_target  # noqa: E402


def sensitivity(reps: int) -> None:
    d = Path(tempfile.mkdtemp(prefix="qwb-bench-tune-"))
    onnx.save(planted_cnn(layers=100, planted=(30, 70)), str(d / "m.onnx"))
    np.savez(d / "calib.npz", **planted_data(32, seed=1))
    np.savez(d / "eval.npz", **planted_data(48, seed=2))
    s = open_session(SessionSpec(str(d / "m.onnx"), str(d / "calib.npz"), str(d / "eval.npz")), calibrate=True)
    runs = []
    for _ in range(reps):
        r = run_tune(s, TuneSpec(parse_target("sqnr>=200"), objective="int8_macs", workers=2))
        runs.append(r)
        full = next(p for p in r.points if p.source == "int8")
        print(f"100-layer CNN: {len(r.groups)} groups, sensitivity {r.timings['sensitivity_s']:.1f} s, "
              f"whole run {r.elapsed_s:.1f} s, {r.evaluations} evaluations; full INT8 {full.holdout_metric:.1f} dB; "
              f"best {r.best.label}; {'; '.join(r.notes)}", flush=True)
    print(f"median sensitivity {statistics.median(r.timings['sensitivity_s'] for r in runs):.1f} s, "
          f"median whole run {statistics.median(r.elapsed_s for r in runs):.1f} s")


def demo(reps: int) -> None:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "workbench.cli.main", "tune", "--demo"], cwd=ROOT,
                           capture_output=True, text=True)
        ts.append(time.perf_counter() - t)
        last = [ln for ln in p.stdout.splitlines() if ln.startswith(("evaluations", "best"))]
        print(f"qwb tune --demo: rc {p.returncode}, {ts[-1]:.1f} s wall; " + " | ".join(last), flush=True)
    print(f"median qwb tune --demo {statistics.median(ts):.1f} s")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "both"
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 3
    if what in ("sensitivity", "both"):
        sensitivity(reps)
    if what in ("demo", "both"):
        demo(reps)
