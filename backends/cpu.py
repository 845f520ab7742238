"""onnxruntime's CPU execution provider on this machine, with the SIMD features that decide INT8 speed."""

from __future__ import annotations

import os

import psutil

from .availability import Availability
from .base import Backend
from .cpuinfo import (
    ARM_FEATURES,
    ARM_MACHINES,
    X86_FEATURES,
    machine,
    model_name,
    named_features,
    runtime_flags,
)


def physical_cores() -> int:
    """Physical cores (onnxruntime's default thread count); logical CPUs when psutil cannot tell."""
    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def int8_hint(arch: str, features: list[str]) -> str:
    """What the CPU's instructions mean for INT8 speed, in one sentence."""
    if arch in ARM_MACHINES:
        if "i8mm" in features:
            return "i8mm and dot-product instructions: the fastest INT8 kernels"
        if any(f.startswith("dot-product") for f in features):
            return "dot-product instructions (SDOT/UDOT): fast INT8 kernels"
        return "plain NEON only: INT8 gains come mostly from memory, not from compute"
    if any("VNNI" in f for f in features) or "AMX-INT8" in features:
        return "VNNI: INT8 dot products in one instruction, INT8 can be well ahead of float"
    if "AVX2" in features:
        return ("AVX2 without VNNI: INT8 uses 16-bit multiply-adds that saturate on large u8 x s8 products; expect a "
                "modest INT8 speedup and check INT8 accuracy on this kind of CPU")
    return "no AVX2: INT8 kernels gain little on this CPU"


class CpuBackend(Backend):
    """onnxruntime's default CPU provider: always there when onnxruntime imports."""

    name = "cpu"
    description = "onnxruntime CPU execution provider"

    def __init__(self, cpuinfo_text: str | None = None, providers: list[str] | None = None, arch: str | None = None):
        self._cpuinfo_text, self._providers, self._arch = cpuinfo_text, providers, arch

    def availability(self) -> Availability:
        try:
            import onnxruntime as ort  # noqa: PLC0415 - availability is a value: a broken onnxruntime is a reason

            providers = self._providers if self._providers is not None else ort.get_available_providers()
            version = ort.__version__
        except ImportError as e:
            return Availability(self.name, False, f"onnxruntime does not import ({e})", "pip install onnxruntime")
        if "CPUExecutionProvider" not in providers:
            return Availability(self.name, False, f"this onnxruntime build has no CPU provider ({providers})",
                                "pip install onnxruntime")
        arch = self._arch or machine()
        flags = runtime_flags(self._cpuinfo_text)
        table = ARM_FEATURES if arch in ARM_MACHINES else X86_FEATURES
        feats = named_features(flags, table)
        cpu = model_name(self._cpuinfo_text) or arch
        cores = physical_cores()
        reason = (f"onnxruntime {version} on {cpu} ({cores} cores, {arch}); SIMD: "
                  f"{', '.join(feats) if feats else 'none of ' + ', '.join(table.values())}")
        return Availability(self.name, True, reason, None,
                            {"cpu": cpu, "arch": arch, "cores": cores, "simd": feats, "onnxruntime": version,
                             "int8": int8_hint(arch, feats)})
