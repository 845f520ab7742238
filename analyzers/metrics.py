"""Error metrics: small pure functions and a streaming accumulator for big tensors.

The pure functions are the definitions, each tested against a hand-computed value; the accumulator
computes exactly the same quantities sample by sample so memory does not grow with the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .diff_types import ErrorMetrics


@dataclass(frozen=True)
class ChannelSQNR:
    """Per-channel SQNR under the one rule every screen shows (README, "SQNR"): a channel with no signal
    (``dead``) or with exactly zero error (``exact``: its values sit on the integer grid, e.g. padding) has
    no finite SQNR; it is NaN here, left out of the channel mean and minimum, and counted separately."""

    db: np.ndarray  # one value per channel, NaN where the channel is dead or exact
    exact: int
    dead: int

    @property
    def counted(self) -> np.ndarray:
        return self.db[~np.isnan(self.db)]


def channel_sqnr(signal: np.ndarray, noise: np.ndarray) -> ChannelSQNR:
    """SQNR per channel from per-channel sums of x^2 (``signal``) and e^2 (``noise``), under the rule above."""
    signal, noise = np.asarray(signal, np.float64), np.asarray(noise, np.float64)
    dead = signal <= 0
    exact = ~dead & (noise <= 0)
    ok = ~dead & ~exact
    db = np.full(signal.shape, np.nan)
    db[ok] = 10.0 * np.log10(signal[ok] / noise[ok])
    return ChannelSQNR(db, int(exact.sum()), int(dead.sum()))


def sqnr_db(x: np.ndarray, y: np.ndarray) -> float:
    """10*log10(sum x^2 / sum (x - y)^2): signal power over quantization-noise power, in dB."""
    x64, e = np.asarray(x, np.float64), np.asarray(y, np.float64) - np.asarray(x, np.float64)
    return power_ratio_db(float((x64 * x64).sum()), float((e * e).sum()))


def power_ratio_db(signal: float, noise: float) -> float:
    if noise <= 0:
        return math.inf if signal > 0 else math.nan
    if signal <= 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def mse(x: np.ndarray, y: np.ndarray) -> float:
    d = np.asarray(y, np.float64) - np.asarray(x, np.float64)
    return float((d * d).mean())


def cosine(x: np.ndarray, y: np.ndarray) -> float:
    a, b = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else (1.0 if not a.any() and not b.any() else 0.0)


def max_abs(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(np.asarray(y, np.float64) - np.asarray(x, np.float64)).max(initial=0.0))


def mean_error(x: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(y, np.float64) - np.asarray(x, np.float64)).mean())


def channel_axis_for(op_type: str, rank: int) -> int | None:
    """Which axis of an activation holds channels: 1 for conv-like NC... tensors, the last one otherwise."""
    if rank < 2:
        return None
    if op_type in ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
                   "InstanceNormalization", "Resize") or rank >= 4:
        return 1
    return rank - 1


class ErrorAccumulator:
    """Streams (float, quantized) tensor pairs and yields ErrorMetrics plus per-sample SQNR.

    ``batched``: axis 0 of every update is a batch of samples (per-sample SQNR per row); otherwise each
    update is one sample. ``channel_axis`` counts in the tensor as passed to ``update``.

    Everything derives from [samples, channels] partial sums of x.x and e.e (e = y - x) plus the total
    of y.y: totals, per-sample and per-channel SQNR, and the cosine through x.y = (x.x + y.y - e.e) / 2.
    """

    def __init__(self, channel_axis: int | None, batched: bool = True):
        self.channel_axis = channel_axis
        self.batched = batched
        self.sx2 = self.se2 = self.sy2 = self.se = 0.0
        self.maxabs = 0.0
        self.count = 0
        self.cx2: np.ndarray | None = None
        self.ce2: np.ndarray | None = None
        self.per_sample: list[np.ndarray] = []

    def _as_bcs(self, a: np.ndarray) -> np.ndarray:
        """View ``a`` as [samples, channels, rest] (channels = 1 when there is no channel axis)."""
        rows = a.shape[0] if (self.batched and a.ndim > 0) else 1
        ax = self.channel_axis
        if ax is None or a.ndim <= ax:
            return a.reshape(rows, 1, -1)
        if not self.batched:
            a = a[None]
            ax += 1
        if ax != 1:
            a = np.moveaxis(a, ax, 1)
        return a.reshape(a.shape[0], a.shape[1], -1) if a.flags.c_contiguous or ax == 1 else \
            np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Fold in one batch of raw tensors (computes the partial sums in numpy)."""
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if x.shape != y.shape:
            raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
        if x.size == 0:
            return
        e = y - x
        x3, e3 = self._as_bcs(x), self._as_bcs(e)
        yf = y.ravel()
        self.add_partial(np.einsum("bcs,bcs->bc", x3, x3), np.einsum("bcs,bcs->bc", e3, e3),
                         float(np.einsum("i,i->", yf, yf)), e.max(), e.min(), e.sum(dtype=np.float64), x.size)

    def add_partial(self, xx, ee, yy, emax, emin, esum, count: int) -> None:
        """Fold in partial sums computed elsewhere (the diff graph): x.x and e.e per sample and channel, y.y.

        Arrays are [samples, channels], [samples], [channels] or scalars, following the accumulator's
        ``batched`` and ``channel_axis``.
        """
        xx, ee = np.asarray(xx, np.float64), np.asarray(ee, np.float64)
        rows = xx.shape[0] if (self.batched and xx.ndim >= 1) else 1
        has_ch = self.channel_axis is not None and xx.ndim >= (2 if self.batched else 1)
        xx2 = xx.reshape(rows, -1) if has_ch else xx.reshape(rows, -1)
        ee2 = ee.reshape(rows, -1)
        sx2_rows, se2_rows = xx2.sum(axis=1), ee2.sum(axis=1)
        self.sx2 += float(sx2_rows.sum())
        self.se2 += float(se2_rows.sum())
        self.sy2 += float(yy)
        self.se += float(esum)
        self.maxabs = max(self.maxabs, float(emax), -float(emin))
        self.count += int(count)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.per_sample.append((10.0 * np.log10(sx2_rows / se2_rows)).astype(np.float32))
        if has_ch and xx2.shape[1] > 1:
            cx2, ce2 = xx2.sum(axis=0), ee2.sum(axis=0)
            if self.cx2 is None:
                self.cx2, self.ce2 = cx2, ce2
            else:
                self.cx2 += cx2
                self.ce2 += ce2

    def channel_sqnr(self) -> ChannelSQNR | None:
        """Per-channel SQNR (see ``ChannelSQNR`` for dead and exact channels); None without channels."""
        return channel_sqnr(self.cx2, self.ce2) if self.cx2 is not None else None

    def result(self) -> ErrorMetrics:
        ch = self.channel_sqnr()
        counted = ch.counted if ch is not None and ch.db.size > 1 else None
        sxy = (self.sx2 + self.sy2 - self.se2) / 2
        den = math.sqrt(self.sx2 * self.sy2)
        cos = sxy / den if den > 0 else (1.0 if self.sx2 == 0 and self.sy2 == 0 else 0.0)
        return ErrorMetrics(
            sqnr_db=power_ratio_db(self.sx2, self.se2),
            channel_sqnr_mean=float(counted.mean()) if counted is not None and counted.size else None,
            channel_sqnr_min=float(counted.min()) if counted is not None and counted.size else None,
            mse=self.se2 / self.count if self.count else math.nan,
            cosine=float(min(max(cos, -1.0), 1.0)),
            max_abs=self.maxabs,
            mean_error=self.se / self.count if self.count else math.nan,
            channels_exact=ch.exact if ch is not None and ch.db.size > 1 else None,
            channels_dead=ch.dead if ch is not None and ch.db.size > 1 else None,
        )

    def sample_sqnr(self) -> np.ndarray:
        return np.concatenate(self.per_sample) if self.per_sample else np.zeros(0, np.float32)


class Reservoir:
    """A uniform random sample of (float, quantized) value pairs, of fixed size, for scatter plots."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.x = np.zeros(0, np.float32)
        self.y = np.zeros(0, np.float32)
        self.seen = 0

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        m = x.size
        if m == 0 or self.size == 0:
            return
        take = self.rng.integers(0, m, size=min(self.size, m))
        bx, by = x.ravel()[take], y.ravel()[take]
        if self.seen == 0:
            self.x, self.y = bx.astype(np.float32), by.astype(np.float32)
        else:
            # each slot keeps its old value or takes the new batch's, in proportion to what each represents
            k = min(self.x.size, bx.size)
            from_new = self.rng.random(k) < m / (self.seen + m)
            self.x[:k][from_new] = bx[:k][from_new]
            self.y[:k][from_new] = by[:k][from_new]
        self.seen += m
