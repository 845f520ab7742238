"""Run every qwb command on every zoo model once and print a Markdown table of what breaks.

    .venv/bin/python -m tests.zoo.survey [NAME_SUBSTRING ...] [--out survey.md]

Each command runs in its own empty working directory (so scratch files left behind show up), with a
temporary ``QWB_CACHE_DIR``; the table gives the exit code, the error line and the files left behind.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tests.cli_util import qwb
from tests.zoo import ZOO, build


def commands(p, work: Path) -> dict[str, tuple[list[str], set[str]]]:
    """command -> (arguments, files it is asked to write in ``work``)."""
    return {
        "quantize": (["quantize", p.model, "--calib", p.calib, "-o", work / "out.onnx"], {"out.onnx"}),
        # onnxruntime's pre-processing runs by default only for BatchNormalization models: force it here
        "quantize-preprocess": (["quantize", p.model, "--calib", p.calib, "-o", work / "out.onnx", "--preprocess",
                                 "always"], {"out.onnx"}),
        "analyze": (["analyze", p.model, "--calib", p.calib, "--eval", p.eval, "--json", work / "j.json"], {"j.json"}),
        "calib": (["calib", p.model, "--calib", p.calib, "--json", work / "c.json"], {"c.json"}),
        "bench": (["bench", p.model, "--calib", p.calib, "--backend", "cpu", "--runs", "3", "--warmup", "1",
                   "--batch", "1", "--json", work / "b.json"], {"b.json"}),
        "report": (["report", p.model, "--calib", p.calib, "--eval", p.eval, "-o", work / "r.html"],
                   {"r.html", "r.json", "r.md"}),
    }


def error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("error:", "internal error:")):
            return ln
    return lines[-1] if lines else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--only", help="comma-separated commands")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    names = [n for n in ZOO if not a.names or any(s in n for s in a.names)]
    rows = ["| model | command | rc | s | result | left in cwd |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="qwb-survey-") as td:
        os.environ["QWB_CACHE_DIR"] = str(Path(td) / "cache")
        for name in names:
            p = build(name)
            for cmd in commands(p, Path(td)):
                if a.only and cmd not in a.only.split(","):
                    continue
                work = Path(td) / f"{name}-{cmd}"
                work.mkdir()
                args, expected = commands(p, work)[cmd]
                t0 = time.perf_counter()
                r = qwb(*args, cwd=work, timeout=600)
                dt = time.perf_counter() - t0
                left = sorted(set(os.listdir(work)) - expected)
                res = "pass" if r.returncode == 0 else error_line(r.stderr or r.stdout).replace("|", "\\|")[:300]
                rows.append(f"| {name} | {cmd} | {r.returncode} | {dt:.1f} | {res} | {', '.join(left)} |")
                print(rows[-1], flush=True)
                (Path(td).parent / "qwb-survey-logs").mkdir(exist_ok=True)
                (Path(td).parent / "qwb-survey-logs" / f"{name}-{cmd}.log").write_text(
                    f"$ qwb {' '.join(map(str, args))}\nrc={r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}")
    text = "\n".join(rows) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
