"""The gap between the deployed INT8 kernels and the exact Q/DQ simulation, its cause, and the measured remedies.

Pure figures: which output figure to judge by, when a gap is more than rounding noise, how much of it a
remedy recovers. The measurements themselves (re-quantizing, running sessions) live in
``workbench.kernel_remedies``; the CPU's integer path comes from ``backends.integer_path``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from backends.integer_path import IntegerPath

from .diff_types import Hint, OutputResult
from .jsonsafe import json_num

# the figure a gap is judged by, best first: all higher-is-better; the sample shares move in steps of 1/N
SAMPLE_FIGURES = ("top1_agreement", "accuracy_int8", "step_agreement", "sequence_match")
# without a decision figure: output SQNR. On a VNNI CPU the fused kernels differ from the simulation only by
# rounding ties (onnxruntime issue 32132); measured on the demo there: 0.02 dB (docs/benchmarks.md)
SQNR_GAP_DB = 1.0
FIGURE_LABELS = {"top1_agreement": "top-1 agreement", "accuracy_int8": "INT8 accuracy",
                 "step_agreement": "step agreement", "sequence_match": "decoded sequences equal",
                 "sqnr_db": "output SQNR"}


def figure_label(metric: str | None) -> str:
    """How consoles and reports name a gap figure."""
    return FIGURE_LABELS.get(metric or "", (metric or "").replace("_", " "))


@dataclass
class Remedy:
    """One remedy measured as a real deployed run on this model, data and CPU."""

    name: str  # x64quantprecision | reduce_range | s8_activations | disable_quant_qdq
    how: str  # the exact way to apply it
    metric_name: str
    value: float | None  # the deployed figure with the remedy (None: it could not run; see note)
    recovered_share: float | None  # (value - deployed) / (exact - deployed): 1 = the whole gap
    int8_kernels: bool = True  # False: the remedy gives up onnxruntime's integer kernels (never 'best')
    note: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "how": self.how, "metric_name": self.metric_name, "value": json_num(self.value),
                "recovered_share": json_num(self.recovered_share), "int8_kernels": self.int8_kernels,
                "note": self.note}

    @classmethod
    def from_dict(cls, d: dict) -> "Remedy":
        return cls(d["name"], d["how"], d["metric_name"], d.get("value"), d.get("recovered_share"),
                   d.get("int8_kernels", True), d.get("note", ""))


@dataclass
class KernelGap:
    """Deployed vs exact on the primary output, the CPU's integer path, the named cause and the remedies."""

    integer_path: IntegerPath | None
    output: str | None = None
    metric_name: str | None = None
    exact: float | None = None
    deployed: float | None = None
    significant: bool = False  # deployed is worse than exact by more than rounding noise (``gap_is_significant``)
    cause: str | None = None  # u8s8_saturation | fused_kernels (None without a significant gap)
    cause_message: str = ""
    remedies: list[Remedy] = field(default_factory=list)
    best: str | None = None  # name of the best remedy that keeps the integer kernels and improves the figure
    skipped: str = ""  # why remedies were not measured, when there is a gap

    @property
    def gap(self) -> float | None:
        if self.exact is None or self.deployed is None:
            return None
        return self.exact - self.deployed

    def best_remedy(self) -> Remedy | None:
        return next((r for r in self.remedies if r.name == self.best), None)

    def to_dict(self) -> dict:
        return {"integer_path": self.integer_path.to_dict() if self.integer_path else None, "output": self.output,
                "metric_name": self.metric_name, "exact": json_num(self.exact), "deployed": json_num(self.deployed),
                "gap": json_num(self.gap), "significant": self.significant, "cause": self.cause,
                "cause_message": self.cause_message, "remedies": [r.to_dict() for r in self.remedies],
                "best": self.best, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, d: dict | None) -> "KernelGap | None":
        if d is None:
            return None
        p = d.get("integer_path")
        return cls(IntegerPath(**p) if p else None, d.get("output"), d.get("metric_name"), d.get("exact"),
                   d.get("deployed"), d.get("significant", False), d.get("cause"), d.get("cause_message", ""),
                   [Remedy.from_dict(r) for r in d.get("remedies", [])], d.get("best"), d.get("skipped", ""))


def gap_figure(exact: list[OutputResult], deployed: list[OutputResult],
               samples: int) -> tuple[str, str, float, float, bool] | None:
    """(output, figure, exact value, deployed value, significant) to judge the gap by: the first output and figure
    (its decision figure, e.g. top-1 agreement, then its SQNR) where deployed is significantly worse than exact;
    without one, the first output's first figure. The saturation may leave every decision unchanged and still
    cost many dB of output SQNR (the demo on an AVX2 CPU: top-1 agreement 99.8% vs 99.6%, SQNR 18.3 vs 33.3 dB)."""
    dep = {o.name: o for o in deployed}
    first = None
    for e in exact:
        d = dep.get(e.name)
        if d is None:
            continue
        figs = [f for f in SAMPLE_FIGURES if getattr(e, f) is not None and getattr(d, f) is not None]
        if math.isfinite(e.sqnr_db) and math.isfinite(d.sqnr_db):
            figs.append("sqnr_db")
        for f in figs:
            ev, dv = float(getattr(e, f)), float(getattr(d, f))
            if gap_is_significant(f, ev, dv, samples):
                return e.name, f, ev, dv, True
            first = first or (e.name, f, ev, dv, False)
    return first


def gap_is_significant(metric: str, exact: float, deployed: float, samples: int) -> bool:
    """Deployed worse than exact by more than rounding noise: more than one sample for a sample share (a rounding
    tie flips at most a borderline sample, and the issue's own check allows one), ``SQNR_GAP_DB`` for SQNR."""
    if metric in SAMPLE_FIGURES:
        return exact - deployed > 1.0 / max(samples, 1) + 1e-9
    return exact - deployed >= SQNR_GAP_DB


def recovered_share(exact: float, deployed: float, value: float | None) -> float | None:
    """The share of the gap a remedy recovers: 0 = none, 1 = all of it (above 1: better than exact)."""
    if value is None or exact == deployed:
        return None
    return (value - deployed) / (exact - deployed)


def name_cause(path: IntegerPath | None) -> tuple[str, str]:
    """(cause code, sentence) for a significant gap on a CPU with ``path``."""
    if path is not None and path.saturates:
        return ("u8s8_saturation",
                f"this CPU's integer path is {path.isa} ({path.instruction}): onnxruntime's u8 x s8 kernels add pairs "
                "of products in a saturating 16-bit lane, which the exact Q/DQ simulation does not do")
    where = f"{path.isa} ({path.instruction}) does not saturate: " if path else ""
    return ("fused_kernels",
            f"{where}onnxruntime's fused integer kernels (QLinearConv, QGemm, ...) requantize and round differently "
            "from the Q/DQ graph (onnxruntime issues 32132 and 25259)")


def pick_best(gap: KernelGap) -> str | None:
    """The remedy with the highest figure among those that keep the integer kernels and beat the deployed one."""
    ok = [r for r in gap.remedies if r.int8_kernels and r.value is not None and gap.deployed is not None
          and r.value > gap.deployed]
    return max(ok, key=lambda r: r.value).name if ok else None


def remedy_hint(gap: KernelGap) -> Hint | None:
    """The model-level hint for a significant gap: the cause, and the best measured remedy with its figure."""
    if not gap.significant:
        return None
    best = gap.best_remedy()
    fig = figure_label(gap.metric_name)
    head = (f"deployed {fig} of {gap.output} is {_fmt(gap.metric_name, gap.deployed)}, exact "
            f"{_fmt(gap.metric_name, gap.exact)}: {gap.cause_message}")
    if best is None:
        tried = ", ".join(r.name for r in gap.remedies) or "none measured"
        return Hint("kernel_gap", head + f" (remedies measured here: {tried}; none improves it)",
                    gap.skipped or "deploy on a CPU whose integer path does not saturate (VNNI, AMX, ARM64), or keep "
                    "the layers that lose most in float", gap.gap or 0.0)
    share = "" if best.recovered_share is None else f", {best.recovered_share:.0%} of the gap"
    return Hint("kernel_remedy", head + f"; measured here, {best.name} gives {fig} "
                f"{_fmt(gap.metric_name, best.value)}{share}",
                best.how, best.recovered_share or 0.0)


def _fmt(metric: str, x: float) -> str:
    return f"{x:.1f} dB" if metric == "sqnr_db" else f"{100 * x:.1f}%"
