"""Which integer dot-product path onnxruntime's CPU kernels (MLAS) take on this CPU, and whether it saturates.

The same INT8 model computes different numbers on different CPUs because MLAS picks its u8 x s8 kernel by
CPUID: on x86 with AVX2 or AVX-512BW but no VNNI it is ``VPMADDUBSW``, which adds pairs of u8*s8 products
in a saturating 16-bit lane; VNNI (``VPDPBUSD``) and AMX (``TDPBUSD``) accumulate straight into 32 bits;
ARM64 widens into 32 bits on every path (NEON, dotprod, i8mm). Naming the path is what turns "deployed is
worse than exact" into a cause (../shared/KERNELS.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .cpuinfo import ARM_MACHINES, X86_MACHINES, machine, runtime_flags, u8s8_saturates


@dataclass(frozen=True)
class IntegerPath:
    """The integer kernel family of one CPU: instruction set, the u8 x s8 instruction, whether it saturates."""

    isa: str  # "AVX2", "AVX-512BW", "AVX-512 VNNI", "AVX-VNNI", "AMX", "SSE4.1", "NEON", "dotprod", "i8mm", ...
    instruction: str  # the instruction MLAS's u8 x s8 (or ARM 8-bit) dot product uses
    saturates: bool  # the default u8 x s8 path can lose products to 16-bit saturation
    note: str  # one sentence: what that means for an INT8 model
    arch: str = "x86_64"

    def label(self) -> str:
        """One line for consoles and reports."""
        return f"{self.isa} ({self.instruction}{', saturating 16-bit pairs' if self.saturates else ''})"

    def to_dict(self) -> dict:
        return asdict(self)


_SAT_NOTE = ("u8 x s8 products are added in pairs into a saturating 16-bit lane, so large activations times large "
             "weights are clipped silently: the deployed INT8 model can be less accurate than its Q/DQ simulation; "
             "onnxruntime's u8 x u8 path (session.x64quantprecision = 1) or 7-bit weights (reduce_range) avoid it")
_EXACT_NOTE = "products accumulate straight into 32 bits: no saturation, the kernels follow the Q/DQ simulation " \
              "up to rounding ties"


def x86_path(flags: set[str]) -> IntegerPath:
    """The x86 path for a set of feature flags (``backends.cpuinfo.runtime_flags`` names)."""
    if "amx_int8" in flags:
        return IntegerPath("AMX", "TDPBUSD", False, "AMX tiles; " + _EXACT_NOTE)
    if "avx512_vnni" in flags:
        return IntegerPath("AVX-512 VNNI", "VPDPBUSD", False, _EXACT_NOTE)
    if "avx_vnni" in flags:
        return IntegerPath("AVX-VNNI", "VPDPBUSD", False, _EXACT_NOTE)
    if u8s8_saturates(flags, "x86_64"):
        isa = "AVX-512BW" if "avx512bw" in flags or "avx512f" in flags else "AVX2"
        return IntegerPath(isa, "VPMADDUBSW", True, _SAT_NOTE)
    return IntegerPath("SSE4.1", "PMADDWD", False, "8-bit values are widened to 16 bits before a 32-bit "
                       "multiply-add: no saturation, but slow INT8")


def arm_path(flags: set[str]) -> IntegerPath:
    """The ARM64 path for a set of feature flags (``Features`` in /proc/cpuinfo, or an emulated CPU's)."""
    if "i8mm" in flags:
        return IntegerPath("i8mm", "SMMLA/UMMLA", False, "8x8 matrix multiply-accumulate into 32 bits: "
                           "no saturation", "aarch64")
    if "asimddp" in flags:
        return IntegerPath("dotprod", "SDOT/UDOT", False, "4-way dot products into 32 bits: no saturation",
                           "aarch64")
    return IntegerPath("NEON", "UMULL/UADALP", False, "widening multiplies, pairwise-added into 32 bits: "
                       "no saturation, but slow INT8", "aarch64")


# what each emulated ARM CPU of the neon-emulated backend exposes (backends.neon_emulated.ARM_CPUS)
EMULATED_ARM_FLAGS = {"neon": {"asimd"}, "dotprod": {"asimd", "asimddp"}, "i8mm": {"asimd", "asimddp", "i8mm"}}


def integer_path(flags: set[str] | None = None, arch: str | None = None) -> IntegerPath | None:
    """This CPU's integer path (``flags`` default: ``runtime_flags()``, true under emulation); None for an
    architecture whose kernels we do not know."""
    arch = arch or machine()
    flags = runtime_flags() if flags is None else flags
    if arch in X86_MACHINES:
        p = x86_path(flags)
        return IntegerPath(p.isa, p.instruction, p.saturates, p.note, arch)
    if arch in ARM_MACHINES:
        return arm_path(flags)
    return None
