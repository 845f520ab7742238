"""Native ARM64: onnxruntime's CPU provider on an ARM CPU (NEON, dot-product, i8mm), XNNPACK when present."""

from __future__ import annotations

import onnxruntime as ort

from .availability import Availability
from .base import Backend
from .cpu import CpuBackend, int8_hint
from .cpuinfo import ARM_FEATURES, ARM_MACHINES, cpuinfo_flags, machine, named_features


class NeonBackend(Backend):
    """The CPU provider's ARM64 kernels, measured on real ARM hardware only."""

    name = "neon"
    description = "onnxruntime on a native ARM64 CPU (NEON / dotprod / i8mm; XNNPACK when present)"

    def __init__(self, arch: str | None = None, cpuinfo_text: str | None = None, providers: list[str] | None = None):
        self._arch, self._cpuinfo_text, self._providers = arch, cpuinfo_text, providers

    def _xnnpack(self) -> bool:
        if self._providers is not None:
            return "XnnpackExecutionProvider" in self._providers

        return "XnnpackExecutionProvider" in ort.get_available_providers()

    def availability(self) -> Availability:
        arch = self._arch or machine()
        if arch not in ARM_MACHINES:
            return Availability(self.name, False, f"this host is {arch}: native NEON needs an ARM64 CPU",
                                "run qwb bench on the ARM64 device itself, or use --backend neon-emulated here to "
                                "check numerics and INT8 coverage (no timings)", {"arch": arch})
        base = CpuBackend(self._cpuinfo_text, self._providers, arch).availability()
        if not base.available:
            return Availability(self.name, False, base.reason, base.fix)
        feats = named_features(cpuinfo_flags(self._cpuinfo_text), ARM_FEATURES)
        xnn = self._xnnpack()
        reason = base.reason + ("; XNNPACK provider present" if xnn else "")
        return Availability(self.name, True, reason, None,
                            dict(base.details, features=feats, xnnpack=xnn, int8=int8_hint(arch, feats)))

    def providers(self, threads: int) -> list:
        if self._xnnpack():
            return [["XnnpackExecutionProvider", {"intra_op_num_threads": str(max(threads, 1))}],
                    "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
