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
    # the spread of the p50 itself: the timed runs cut into ``rounds`` consecutive rounds, each round's p50, and the
    # p10 and p90 of those; a change of p50 inside this range is what timing the same model again gives
    rounds: int | None = None
    p50_p10_ms: float | None = None
    p50_p90_ms: float | None = None

    @classmethod
    def from_seconds(cls, seconds, batch: int) -> "LatencyStats":
        """From per-run seconds (numpy's linear-interpolation percentiles)."""

        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        if ms.size == 0:
            raise ValueError("no timed runs")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        mean = float(ms.mean())
        rounds = round_p50s(ms)
        lo, hi = (float(x) for x in np.percentile(rounds, [10, 90])) if rounds.size >= MIN_ROUNDS else (None, None)
        return cls(batch, int(ms.size), float(p50), float(p90), float(p99), mean, float(ms.std()),
                   batch * 1e3 / mean if mean > 0 else float("inf"), int(rounds.size), lo, hi)

    def to_dict(self) -> dict:
        return asdict(self)

    def contract(self) -> dict:
        """The fields of the public JSON contract: the first six, then the spread of the p50 (added later)."""
        return {k: getattr(self, k) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "throughput",
                                              "rounds", "p50_p10_ms", "p50_p90_ms")}


ROUND_RUNS = 10  # timed runs per round
MAX_ROUNDS = 20
MIN_ROUNDS = 3  # fewer rounds give no spread worth the name


def round_p50s(ms: np.ndarray) -> np.ndarray:
    """The p50 of each round: the runs in timing order cut into equal consecutive rounds of at least
    ``ROUND_RUNS`` (at most ``MAX_ROUNDS`` rounds; the last runs that do not fill a round are left out)."""
    n = min(MAX_ROUNDS, ms.size // ROUND_RUNS)
    if n < 1:
        return np.empty(0)
    size = ms.size // n
    return np.median(ms[: n * size].reshape(n, size), axis=1)
