"""What the benchmark feeds a model: a pool of samples per input, cut to each batch size in the child.

The caller supplies the samples (real calibration data when it has them, so output comparisons mean
something); the pool is saved once and each child cycles through it to build any batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BackendError


@dataclass
class Feed:
    """Sample pool: ``arrays[name]`` has the sample axis first where ``batch_axis[name]`` is True."""

    arrays: dict
    batch_axis: dict
    description: str = ""

    @property
    def can_batch(self) -> bool:
        """Every input has a variable batch axis, so any batch size can be cut from the pool."""
        return bool(self.batch_axis) and all(self.batch_axis.values())

    @property
    def pool_size(self) -> int:
        sizes = [a.shape[0] for n, a in self.arrays.items() if self.batch_axis.get(n)]
        return min(sizes) if sizes else 1

    def shapes(self, batch: int) -> dict[str, tuple]:
        """Input shapes at ``batch`` (for counting MACs)."""
        return {n: ((batch,) + tuple(a.shape[1:])) if self.batch_axis.get(n) else tuple(a.shape)
                for n, a in self.arrays.items()}

    def check_batch(self, batch: int) -> None:
        """Refuse, before any process starts, a batch size the model cannot take."""
        if batch != 1 and not self.can_batch:
            fixed = [n for n, b in self.batch_axis.items() if not b]
            raise BackendError(f"the model's input {fixed[0]!r} has no variable batch axis, so it can only run one "
                               f"sample at a time (asked for batch {batch})", "use --batch 1, or export the model "
                               "with a dynamic batch dimension")

    def save(self, path: Path) -> Path:

        np.savez(path, **self.arrays)
        return path
