"""The accuracy target of a tune run: ``"top1_agreement>=0.99"``, ``"cosine>=0.98"``, ``"accuracy_drop<=0.5%"``,
``"sqnr>=30"``, parsed once and measured on any list of output results (a public CLI contract)."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from analyzers.diff_types import OutputResult

from ..errors import WorkbenchError

# metric -> (direction it must go: ">=" or "<=", what it reads)
METRICS = {
    "top1_agreement": (">=", "share of samples whose FP32 and INT8 top-1 class agree (classifier outputs)"),
    "cosine": (">=", "cosine similarity of FP32 and INT8 outputs"),
    "sqnr": (">=", "output SQNR in dB"),
    "accuracy_drop": ("<=", "FP32 accuracy minus INT8 accuracy against the labels, in points (0.5% = 0.005)"),
}
EXAMPLES = '"top1_agreement>=0.99", "cosine>=0.98", "accuracy_drop<=0.5%" or "sqnr>=30"'
_RE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=)\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%?)\s*$")


@dataclass(frozen=True)
class Target:
    """One goal: ``metric op value``; ``value`` is a fraction for percentages (0.5% -> 0.005)."""

    metric: str
    op: str
    value: float
    text: str

    @property
    def higher_is_better(self) -> bool:
        return self.op == ">="

    def measure(self, outputs: list[OutputResult]) -> float | None:
        """The metric over every output (the worst one for several outputs); None when the outputs lack it."""
        vals = []
        for o in outputs:
            if self.metric == "top1_agreement":
                v = o.top1_agreement
            elif self.metric == "cosine":
                v = o.cosine_mean if o.cosine_mean is not None else o.cosine
            elif self.metric == "sqnr":
                v = o.sqnr_db
            else:
                v = (o.accuracy_fp32 - o.accuracy_int8) if (o.accuracy_fp32 is not None
                                                            and o.accuracy_int8 is not None) else None
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                vals.append(float(v))
        if not vals:
            return None
        return min(vals) if self.higher_is_better else max(vals)

    def met(self, value: float | None) -> bool:
        if value is None:
            return False
        return value >= self.value - 1e-12 if self.higher_is_better else value <= self.value + 1e-12

    def score(self, value: float | None) -> float:
        """The metric as a figure where larger is always better (for gains and ranking)."""
        if value is None:
            return -math.inf
        return value if self.higher_is_better else -value

    def goal(self) -> float:
        return self.score(self.value)

    def error(self, value: float | None) -> float:
        """The metric as an error that roughly adds up over independent sources (noise power for SQNR,
        1 - cosine, disagreement, accuracy drop): what the selection sums over groups."""
        if value is None:
            return math.inf
        if self.metric == "sqnr":
            return 10.0 ** (-value / 10.0)
        if self.metric == "accuracy_drop":
            return max(value, 0.0)
        return max(1.0 - value, 0.0)

    def describe(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_target(text: str) -> Target:
    """``"cosine>=0.98"`` as a Target; a clear error for anything else."""
    fix = f"write --target METRIC>=VALUE or METRIC<=VALUE, e.g. {EXAMPLES}"
    m = _RE.match(text or "")
    if not m:
        raise WorkbenchError(f"--target {text!r} is not a target expression", fix)
    metric, op, num, pct = m.groups()
    if metric not in METRICS:
        close = difflib.get_close_matches(metric, list(METRICS), n=1)
        raise WorkbenchError(f"--target {text!r}: unknown metric {metric!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""),
                             f"use one of {', '.join(METRICS)}, e.g. {EXAMPLES}")
    want = METRICS[metric][0]
    if op != want:
        raise WorkbenchError(f"--target {text!r}: {metric} must be {'at least' if want == '>=' else 'at most'} a "
                             f"value, so it takes {want}", f"write {metric}{want}{num}{pct}")
    value = float(num) / (100.0 if pct else 1.0)
    if pct and metric == "sqnr":
        raise WorkbenchError(f"--target {text!r}: sqnr is in dB, not a percentage", "e.g. --target \"sqnr>=30\"")
    if metric in ("top1_agreement", "cosine") and not -1.0 <= value <= 1.0:
        raise WorkbenchError(f"--target {text!r}: {metric} is a fraction between 0 and 1 (or a percentage)",
                             f"e.g. --target \"{metric}>=0.99\" or \"{metric}>=99%\"")
    if metric == "accuracy_drop" and not 0.0 <= value <= 1.0:
        raise WorkbenchError(f"--target {text!r}: accuracy_drop is a non-negative fraction or percentage",
                             "e.g. --target \"accuracy_drop<=0.5%\"")
    return Target(metric, op, value, text.strip())
