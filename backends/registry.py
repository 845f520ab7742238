"""The backends by name, as ``qwb bench --backend`` and the GUI know them."""

from __future__ import annotations

from pathlib import Path

from .base import Backend
from .cpu import CpuBackend
from .cuda import CudaBackend
from .neon import NeonBackend
from .neon_emulated import NeonEmulatedBackend

BACKEND_NAMES = ("cpu", "cuda", "neon", "neon-emulated")


def make_backend(name: str, sysroot: Path | None = None, arm_cpu: str = "dotprod") -> Backend:
    """One backend object (cheap: nothing is loaded until a benchmark runs)."""
    if name == "cpu":
        return CpuBackend()
    if name == "cuda":
        return CudaBackend()
    if name == "neon":
        return NeonBackend()
    if name == "neon-emulated":
        return NeonEmulatedBackend(sysroot, arm_cpu)
    raise ValueError(f"unknown backend {name!r}; choose from {', '.join(BACKEND_NAMES)}")


def all_backends(sysroot: Path | None = None) -> list[Backend]:
    """Every backend, in the order ``qwb backends`` lists them."""
    return [make_backend(n, sysroot) for n in BACKEND_NAMES]
