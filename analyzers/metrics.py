"""Error metrics: small pure functions (one registry) and a streaming accumulator for big tensors.

The pure functions are the definitions, each tested against a hand-computed value; the accumulator
computes exactly the same quantities sample by sample so memory does not grow with the data.
"""

from __future__ import annotations

import math

import numpy as np

from .diff_types import ErrorMetrics

#: Per-channel SQNR above this is treated as this (a channel whose error is exactly zero would be +inf).
CHANNEL_SQNR_CAP_DB = 200.0


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


METRICS = {"sqnr_db": sqnr_db, "mse": mse, "cosine": cosine, "max_abs": max_abs, "mean_error": mean_error}


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
    """

    def __init__(self, channel_axis: int | None, batched: bool = True):
        self.channel_axis = channel_axis
        self.batched = batched
        self.sx2 = self.se2 = self.sxy = self.sy2 = self.se = 0.0
        self.maxabs = 0.0
        self.count = 0
        self.cx2: np.ndarray | None = None
        self.ce2: np.ndarray | None = None
        self.per_sample: list[np.ndarray] = []

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        if x.shape != y.shape:
            raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
        e = y - x
        xx = x * x
        ee = e * e
        rows = x.shape[0] if (self.batched and x.ndim > 0) else 1
        sx2_rows = xx.reshape(rows, -1).sum(axis=1, dtype=np.float64)
        se2_rows = ee.reshape(rows, -1).sum(axis=1, dtype=np.float64)
        self.sx2 += float(sx2_rows.sum())
        self.se2 += float(se2_rows.sum())
        self.sxy += float(np.vdot(x.ravel().astype(np.float64), y.ravel()))
        self.sy2 += float(np.vdot(y.ravel().astype(np.float64), y.ravel()))
        self.se += float(e.sum(dtype=np.float64))
        if e.size:
            self.maxabs = max(self.maxabs, float(np.abs(e).max()))
        self.count += x.size
        with np.errstate(divide="ignore", invalid="ignore"):
            self.per_sample.append((10.0 * np.log10(sx2_rows / se2_rows)).astype(np.float32))
        if self.channel_axis is not None and x.ndim > self.channel_axis:
            axes = tuple(i for i in range(x.ndim) if i != self.channel_axis)
            cx2 = xx.sum(axis=axes, dtype=np.float64)
            ce2 = ee.sum(axis=axes, dtype=np.float64)
            if self.cx2 is None:
                self.cx2, self.ce2 = cx2, ce2
            else:
                self.cx2 += cx2
                self.ce2 += ce2

    def channel_sqnr(self) -> np.ndarray | None:
        """SQNR per channel (dB) over channels that carry any signal; capped at CHANNEL_SQNR_CAP_DB."""
        if self.cx2 is None:
            return None
        live = self.cx2 > 0
        if not live.any():
            return None
        with np.errstate(divide="ignore"):
            db = 10.0 * np.log10(self.cx2[live] / self.ce2[live])
        return np.minimum(db, CHANNEL_SQNR_CAP_DB)

    def result(self) -> ErrorMetrics:
        ch = self.channel_sqnr()
        den = math.sqrt(self.sx2 * self.sy2)
        cos = self.sxy / den if den > 0 else (1.0 if self.sx2 == 0 and self.sy2 == 0 else 0.0)
        return ErrorMetrics(
            sqnr_db=power_ratio_db(self.sx2, self.se2),
            channel_sqnr_mean=float(ch.mean()) if ch is not None and ch.size > 1 else None,
            channel_sqnr_min=float(ch.min()) if ch is not None and ch.size > 1 else None,
            mse=self.se2 / self.count if self.count else math.nan,
            cosine=float(cos),
            max_abs=self.maxabs,
            mean_error=self.se / self.count if self.count else math.nan,
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
