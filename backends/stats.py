"""Latency statistics of one timed loop: the numbers ``qwb bench`` reports for each model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles, mean and spread of per-run latency, and samples per second at that batch size."""

    batch: int
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    throughput: float  # samples per second: batch / mean latency
    p10_ms: float | None = None  # with p90: the spread a change must exceed to count (None in older results)

    @classmethod
    def from_seconds(cls, seconds, batch: int) -> "LatencyStats":
        """From per-run seconds (numpy's linear-interpolation percentiles)."""

        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no timed runs")
        p10, p50, p90, p99 = np.percentile(ms, [10, 50, 90, 99])
        mean = float(ms.mean())
        return cls(batch, int(ms.size), float(p50), float(p90), float(p99), mean, float(ms.std()),
                   batch * 1e3 / mean if mean > 0 else float("inf"), float(p10))

    def to_dict(self) -> dict:
        return asdict(self)

    def contract(self) -> dict:
        """The fields of the public JSON contract (six, plus ``p10_ms`` for the spread, added later)."""
        return {k: getattr(self, k) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput",
                                              "p10_ms")}
