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


# numpy's runtime dispatch reads CPUID itself: its answer is what the running code sees, even where
# /proc/cpuinfo describes another CPU (QEMU user mode emulating an older model, some containers)
_NUMPY_X86 = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512BW": "avx512bw", "AVX512VNNI": "avx512_vnni"}
_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def _numpy_cpu_features() -> dict | None:
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # noqa: PLC0415 - numpy >= 2 (private module: its path moved)
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__  # noqa: PLC0415 - numpy 1.x
        except ImportError:
            return None
    return dict(__cpu_features__)


def runtime_flags(cpuinfo_text: str | None = None) -> set[str]:
    """This process's CPU feature flags: /proc/cpuinfo corrected by CPUID where numpy reads it.

    onnxruntime picks its integer kernels by CPUID, so CPUID is the truth; /proc/cpuinfo alone can
    describe the host of an emulator instead of the CPU the code runs on.
    """
    flags = cpuinfo_flags(cpuinfo_text)
    if cpuinfo_text is not None or machine() not in X86_MACHINES:
        return flags
    cpuid = _numpy_cpu_features()
    if not cpuid:
        return flags
    emulated = False
    for key, flag in _NUMPY_X86.items():
        if key in cpuid:
            emulated |= (flag in flags) and not cpuid[key]  # /proc/cpuinfo claims what CPUID denies
            (flags.add if cpuid[key] else flags.discard)(flag)
    if emulated or not cpuid.get("AVX2", True):
        # CPUID cannot confirm these here (numpy does not read them): an emulated older CPU has neither,
        # and both come only on CPUs with AVX2
        flags -= {"avx_vnni", "amx_int8"}
    return flags


def u8s8_saturates(flags: set[str], arch: str | None = None) -> bool:
    """True on x86 CPUs whose u8 x s8 integer kernels saturate (AVX2 / AVX-512 without VNNI).

    There onnxruntime's default kernels add pairs of u8*s8 products in a saturating 16-bit lane
    (VPMADDUBSW), so an INT8 model computes other numbers than on a VNNI CPU or on ARM64
    (../shared/KERNELS.md). The session option ``session.x64quantprecision = "1"`` avoids it.
    """
    arch = arch or machine()
    return arch in X86_MACHINES and "avx2" in flags and not any(f in flags for f in _VNNI_FLAGS)
