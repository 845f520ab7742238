"""Root-cause hints for a layer, computed from its data, each naming the setting to try.

Every rule is a small function of plain numbers (calibration statistics, weight ranges, measured
clipping), so each can be tested on its own and explained in one sentence to the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .calibration.collect import WeightStats
from .calibration.methods import RangeStats
from .diff_types import Hint

OUTLIER_SHARE = 0.5  # the top 0.01% of values take at least half of the calibrated range
CLIP_RATE = 1e-3  # 0.1% of evaluation values saturate
CHANNEL_SPREAD = 4.0  # largest weight channel range / median channel range under per-tensor quantization
SKEW_USAGE = 0.6  # a symmetric grid whose data use less than this share of it, because of the sign
MIXED_RANGE_RATIO = 8.0  # Add/Concat inputs whose ranges differ this much share one scale badly


@dataclass
class HintInputs:
    """What the hint rules look at for one layer."""

    node: str
    op_type: str
    tensor: str
    range_stats: RangeStats | None = None  # the compared tensor under the range it was quantized with
    symmetric_activations: bool = False
    activation_signed: bool = False
    per_channel: bool = True
    weight: WeightStats | None = None
    input_ranges: list[tuple[str, float, float]] = field(default_factory=list)  # (tensor, min, max)
    clip_rate: float | None = None  # measured on the evaluation data
    precision: str = "int8"  # what the layer is set to now: a hint never suggests it again
    range_method: str = "minmax"  # how this tensor's range was calibrated (minmax, percentile, entropy, mse)
    percentile: float | None = None  # its percentile, when the method is percentile


def _wider(h_or_precision) -> str:
    """The next setting that keeps more precision than the layer has now ("INT16 (or FP32)" or "FP32")."""
    p = h_or_precision.precision if isinstance(h_or_precision, HintInputs) else h_or_precision
    return "FP32" if p == "int16" else "INT16 (or FP32)"


def outlier_hint(h: HintInputs) -> Hint | None:
    rs = h.range_stats
    if rs is None or rs.outlier_share < OUTLIER_SHARE:
        return None
    return Hint("outliers", f"rare outliers dominate the range of {h.tensor}: the top 0.01% of values take "
                f"{rs.outlier_share:.0%} of it, leaving {rs.grid_usage:.1%} of the integer grid for the rest",
                "set a calibration percentile on this layer (e.g. 99.99), or use entropy or mse calibration",
                rs.outlier_share)


def clipping_hint(h: HintInputs) -> Hint | None:
    if h.clip_rate is None or h.clip_rate < CLIP_RATE:
        return None
    msg = f"{h.clip_rate:.2%} of evaluation values of {h.tensor} fall outside the quantized range and saturate"
    if h.range_method == "minmax" and h.percentile is None:
        # the range already holds every calibration value: the evaluation data reach past what calibration saw
        return Hint("clipping", msg + " (the minmax range holds every calibration value, so the evaluation data "
                    "reach values the calibration data never did)", "calibrate with data that covers the "
                    f"evaluation data's range, or keep this layer in {_wider(h)}", h.clip_rate)
    now = f"percentile {h.percentile:g}" if h.percentile is not None else h.range_method
    return Hint("clipping", msg, f"widen the range: this layer uses {now}; raise its percentile (e.g. 99.999) or use "
                "minmax for it", h.clip_rate)


def per_channel_hint(h: HintInputs) -> Hint | None:
    w = h.weight
    if h.per_channel or w is None or w.channel_absmax.size < 2:
        return None
    spread = w.channel_spread
    if spread < CHANNEL_SPREAD:
        return None
    return Hint("per_channel", f"the output channels of weight {w.name} have very different ranges (largest "
                f"{spread:.1f}x the median) but share one per-tensor scale", "set per_channel = true in the recipe "
                f"(or keep this layer in {_wider(h)})", spread)


def zero_point_skew_hint(h: HintInputs) -> Hint | None:
    rs = h.range_stats
    if rs is None or not h.symmetric_activations:
        return None
    lo, hi = rs.lo, rs.hi
    span = max(abs(lo), abs(hi))
    if span <= 0:
        return None
    used = (hi - min(lo, 0.0) if lo >= 0 else max(hi, 0.0) - lo) / (2 * span)
    if used >= SKEW_USAGE:
        return None
    return Hint("zero_point_skew", f"{h.tensor} is one-sided ({lo:.3g} to {hi:.3g}) but quantized on a symmetric "
                f"grid, so only {used:.0%} of the levels can be reached", "use asymmetric activations "
                "(symmetric_activations = false, activation_type = \"u8\")", used)


def mixed_ranges_hint(h: HintInputs) -> Hint | None:
    if h.op_type not in ("Add", "Sum", "Concat", "Sub") or len(h.input_ranges) < 2:
        return None
    mags = [(t, max(abs(lo), abs(hi))) for t, lo, hi in h.input_ranges]
    mags = [(t, m) for t, m in mags if m > 0]
    if len(mags) < 2:
        return None
    (t_small, small), (t_big, big) = min(mags, key=lambda x: x[1]), max(mags, key=lambda x: x[1])
    ratio = big / small
    if ratio < MIXED_RANGE_RATIO:
        return None
    return Hint("mixed_ranges", f"the inputs of this {h.op_type} have very different ranges ({t_small}: "
                f"+/-{small:.3g}, {t_big}: +/-{big:.3g}, {ratio:.0f}x) and its output has one scale, so the small "
                "input is crushed", f"keep this node in {_wider(h)}, or rebalance the branches before it", ratio)


RULES = (outlier_hint, clipping_hint, per_channel_hint, zero_point_skew_hint, mixed_ranges_hint)


def layer_hints(h: HintInputs) -> list[Hint]:
    """Every rule that fires for this layer, strongest evidence first within the rule order."""
    return [hint for rule in RULES if (hint := rule(h)) is not None]


def fallback_hint(node: str, precision: str = "int8") -> Hint:
    """For a flagged layer no rule explains: say so, and give the setting that helps (never the current one)."""
    bits = "16-bit" if precision == "int16" else "8-bit"
    return Hint("no_single_cause", "no single cause stands out in the data (ranges, clipping and weight "
                f"channels look ordinary); the layer is simply sensitive to {bits} precision",
                f"set {node} to {_wider(precision)} and re-run to see what it buys")
