"""CPU features that decide INT8 speed: AVX2 / AVX-512 / VNNI on x86, dot-product / i8mm on ARM64.

Read from ``/proc/cpuinfo`` (Linux). INT8 speedups exist only with the right instructions: without
VNNI (x86) or dotprod/i8mm (ARM) an INT8 kernel may barely beat float, so the features are part of
what a backend reports.
"""

from __future__ import annotations

import platform
from pathlib import Path

# flag in /proc/cpuinfo -> what we call it
X86_FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI",
                "amx_int8": "AMX-INT8"}
ARM_FEATURES = {"asimd": "NEON (asimd)", "asimddp": "dot-product (dotprod)", "i8mm": "i8mm", "sve": "SVE",
                "sve2": "SVE2"}
ARM_MACHINES = ("aarch64", "arm64")
X86_MACHINES = ("x86_64", "amd64", "i686", "i386")


def machine() -> str:
    """The host architecture, lower case (``x86_64``, ``aarch64``, ...)."""
    return platform.machine().lower()


def cpuinfo_flags(text: str | None = None) -> set[str]:
    """The feature flags of the first CPU ('flags' on x86, 'Features' on ARM)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def model_name(text: str | None = None) -> str:
    """The CPU's marketing name, as lscpu shows it ('' when unknown)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return platform.processor()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("model name", "cpu model", "hardware"):
            return value.strip()
    return platform.processor()


def named_features(flags: set[str], table: dict[str, str]) -> list[str]:
    """The features from ``table`` the flags contain, in the table's order."""
    return [name for flag, name in table.items() if flag in flags]
