"""The report's verdicts: is this run good enough (good / warn / bad), and is the after run better than the before?

Without labels there is no accuracy, but the outputs still say how far INT8 is from FP32: output SQNR and the
agreement figure of the output's kind. Each available figure is judged against the thresholds below and the
run gets the worst of them (a 12 dB output, or 25 % of samples where INT8 picks another class, is never good).
Both execution modes count when the run measured both (the deployed figures are what an application gets).
Works on the JSON form of a run summary, so a saved report is judged by the same rules when re-rendered.
``run_verdict`` and ``runs_verdict`` judge analysis results as a report of them would (the GUI's Run and
Before/after panels call them), so the GUI, ``qwb report`` and the report JSON's ``verdict`` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzers.diff_types import AnalysisResult

from ..compare import compare_runs
from .bench import bench_latency_changes, summarize
from .data import RunSummary, to_json

LEVELS = ("good", "warn", "bad")


@dataclass(frozen=True)
class Rule:
    """A figure of a run summary and the values it must reach to be ``good`` and at least ``warn``."""

    field: str
    good: float
    warn: float
    text: str  # how the figure is named in a reason ("{value}" is filled in)
    scale: float = 100.0  # shown as a percentage unless 1


RULES = (
    Rule("accuracy_delta", -0.005, -0.01, "accuracy change {value} points (good ≥ −0.5, warn ≥ −1)"),
    Rule("top1_agreement", 0.99, 0.95, "top-1 agreement {value} % (good ≥ 99 %, warn ≥ 95 %)"),
    Rule("sequence_match", 0.99, 0.95, "decoded sequences equal {value} % (good ≥ 99 %, warn ≥ 95 %)"),
    Rule("cosine_mean", 0.999, 0.99, "embedding cosine {value} (good ≥ 0.999, warn ≥ 0.99)", 1.0),
    Rule("output_sqnr_db", 25.0, 15.0, "output SQNR {value} dB (good ≥ 25 dB, warn ≥ 15 dB)", 1.0),
)


def _fmt(rule: Rule, v: float) -> str:
    if rule.field == "accuracy_delta":
        return f"{100 * v:+.2f}".replace("-", "−")
    if rule.field == "cosine_mean":
        return f"{v:.5f}"
    return f"{v * rule.scale:.1f}" if rule.scale != 1 or rule.field == "output_sqnr_db" else f"{v:g}"


def judge(summary: dict | None) -> tuple[str | None, list[str]]:
    """(verdict, reasons) of one run summary (``RunSummary`` as JSON): the worst level over every figure the
    run has, in either execution mode; reasons name each figure that is not good. None without any figure."""
    if not summary:
        return None, []
    level, reasons, judged = 0, [], False
    for s in (summary, summary.get("deployed")):
        if not s:
            continue
        mode = s.get("kernels") or ""
        for rule in RULES:
            v = s.get(rule.field)
            if v is None:
                continue
            judged = True
            x = round(v, 9)  # -0.010000000000000009 is one point on 100 samples, not worse than one point
            got = 0 if x >= rule.good else 1 if x >= rule.warn else 2
            if got:
                text = f"{LEVELS[got]}: " + rule.text.format(value=_fmt(rule, v))
                if any(r[0] == text for r in reasons):  # the same figure in both modes: one reason
                    reasons = [(t, m + " and deployed" if t == text else m) for t, m in reasons]
                else:
                    reasons.append((text, mode))
            level = max(level, got)
    return (LEVELS[level] if judged else None), [t + (f" ({m} kernels)" if m else "") for t, m in reasons]


SQNR_NOISE_DB = 0.5  # output SQNR moves this much between samples subsets: smaller changes are "the same"


def compare_verdict(outputs: list[dict], before: dict | None, after: dict | None,
                    latency: list[dict] = ()) -> tuple[str, list[str]]:
    """Is the after run better? ``outputs``: the comparison's output rows (``OutputChange`` as JSON); ``before`` /
    ``after``: the two run summaries (their ``samples`` set the noise of accuracy and agreement: one sample); ``latency``: ``LatencyChange`` rows. ``better``/``worse`` when every figure
    that moved moved one way, ``mixed`` when they disagree, ``same`` when nothing moved past its noise."""
    up, down = [], []
    n = (after or {}).get("samples") or (before or {}).get("samples")
    one = 1.0 / n + 1e-9 if n else 0.0  # a share that moved by one sample is not a finding
    for o in outputs:
        name = f"{o['name']} ({o.get('kernels') or 'exact'})"
        for key, label, scale, noise in (("accuracy", "accuracy", 100, one), ("top1", "top-1 agreement", 100, one),
                                         ("sqnr", "SQNR", 1, SQNR_NOISE_DB)):
            b, a = o.get(f"{key}_before"), o.get(f"{key}_after")
            if b is None or a is None or abs(a - b) <= noise:
                continue
            unit = " dB" if key == "sqnr" else " %"
            text = f"{name} {label} {b * scale:.1f} → {a * scale:.1f}{unit}"
            (up if a > b else down).append(text)
    for lat in latency:
        if lat.get("outcome") in ("faster", "slower"):
            text = f"latency on {lat['backend']} {lat['outcome']} (beyond the p10–p90 spread)"
            (up if lat["outcome"] == "faster" else down).append(text)
    vb, va = judge(before)[0], judge(after)[0]
    if vb and va and vb != va:
        (up if LEVELS.index(va) < LEVELS.index(vb) else down).append(f"verdict {vb} → {va}")
    if up and down:
        return "mixed", [f"better: {t}" for t in up] + [f"worse: {t}" for t in down]
    if up:
        return "better", up
    if down:
        return "worse", down
    return "same", ["no output figure moved beyond its noise (SQNR ±0.5 dB, accuracy and agreement ±1 sample)"]


def apply_verdicts(report):
    """Set a ``ReportData``'s verdict on its final run (good / warn / bad) and, when comparing, whether the after run is better."""
    doc = report.to_dict()
    report.verdict, report.verdict_reasons = judge(doc["runs"][doc["final_run"]]["summary"])
    c = doc.get("comparison")
    if c and report.comparison is not None:
        report.comparison.verdict, report.comparison.verdict_reasons = compare_verdict(
            c["outputs"], doc["runs"][c["before"]]["summary"], doc["runs"][c["after"]]["summary"], c["latency"])
    return report


def run_verdict(result: AnalysisResult) -> tuple[str | None, list[str]]:
    """(verdict, reasons) of one analysis result: what a report of this run carries as ``verdict``."""
    return judge(to_json(RunSummary.of(result)))


def runs_verdict(before: AnalysisResult, after: AnalysisResult, before_bench: dict | None = None,
                 after_bench: dict | None = None) -> tuple[str, list[str]]:
    """Is ``after`` better than ``before``: the report's ``comparison.verdict`` of these two runs. ``*_bench``:
    each run's benchmarks as ``{backend: BackendResult.to_dict()}`` (what the GUI keeps), for the latency rows."""
    c = compare_runs(before, after)
    latency = bench_latency_changes(summarize(before_bench) if before_bench else None,
                                    summarize(after_bench) if after_bench else None)
    return compare_verdict(to_json(c.outputs), to_json(RunSummary.of(before)), to_json(RunSummary.of(after)),
                           to_json(latency))
