"""ARM64 kernels on an x86 host, under QEMU user-mode: same numbers and INT8 coverage, never timings.

The aarch64 onnxruntime wheel runs inside a Debian arm64 sysroot (built by ``qwb neon-setup``), with
``QEMU_CPU`` choosing the emulated CPU and so the kernels onnxruntime dispatches: plain NEON, dot-product
or i8mm. It answers "will my INT8 model give the same numbers and the same INT8 coverage on the ARM
device?". Emulated latency is 90-190x off and kernel-dependent in unrelated ways, so it is never reported.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .arm_sysroot import SETUP_COMMAND, check_sysroot, emulated_command, emulated_env, find_qemu
from .availability import Availability
from .base import WORKER, Backend
from .cpuinfo import ARM_MACHINES, machine

# our name -> (QEMU_CPU value, what it exercises)
ARM_CPUS = {
    "neon": ("cortex-a57", "plain NEON (Cortex-A57)"),
    "dotprod": ("neoverse-n1", "dot-product (Neoverse-N1)"),
    "i8mm": ("max,sve=off,sme=off", "i8mm (QEMU 'max' CPU without SVE/SME)"),
}
DEFAULT_ARM_CPUS = ("neon", "dotprod", "i8mm")


def qemu_version(qemu: str) -> str:
    """For the availability reason: which QEMU produced the numbers."""
    try:
        out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.split("version", 1)[1].split()[0] if "version" in out else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


class NeonEmulatedBackend(Backend):
    """onnxruntime's aarch64 build under qemu-aarch64 with a chosen emulated CPU."""

    name = "neon-emulated"
    emulated = True
    description = "onnxruntime's ARM64 kernels under QEMU user-mode (numerics and INT8 coverage only)"

    def __init__(self, sysroot: Path | None, cpu: str = "dotprod", arch: str | None = None, qemu: str | None = None):
        if cpu not in ARM_CPUS:
            raise ValueError(f"unknown emulated ARM CPU {cpu!r}; choose from {', '.join(ARM_CPUS)}")
        self.sysroot = Path(sysroot) if sysroot else None
        self.cpu = cpu
        self._arch = arch
        self._qemu = qemu

    @property
    def qemu_cpu(self) -> str:
        return ARM_CPUS[self.cpu][0]

    def qemu(self) -> str | None:
        """The emulator binary (injectable for tests)."""
        return self._qemu or find_qemu()

    def availability(self) -> Availability:
        arch = self._arch or machine()
        if arch in ARM_MACHINES:
            return Availability(self.name, False, f"this host is {arch}: ARM64 kernels run natively here",
                                "use --backend neon (real timings)", {"arch": arch})
        qemu = self.qemu()
        if not qemu:
            return Availability(self.name, False, "QEMU user-mode for aarch64 (qemu-aarch64-static) is not "
                                "installed", f"apt-get install -y qemu-user-static debootstrap, then {SETUP_COMMAND}")
        info, why = check_sysroot(self.sysroot)
        if info is None:
            return Availability(self.name, False, why, f"{SETUP_COMMAND} (builds it in about a minute; needs root "
                                "and network)", {"sysroot": str(self.sysroot) if self.sysroot else None})
        ort_arm = info.packages.get("onnxruntime", "?")
        reason = (f"QEMU {qemu_version(qemu)} user-mode, onnxruntime {ort_arm} (aarch64) in {info.path}; emulated "
                  f"CPUs: {', '.join(f'{k} = {v[1]}' for k, v in ARM_CPUS.items())}; numerics and INT8 coverage "
                  "only, no timings")
        details = {"sysroot": info.path, "qemu": qemu, "onnxruntime_aarch64": ort_arm, "cpu": self.cpu,
                   "qemu_cpu": self.qemu_cpu, "cpus": {k: v[1] for k, v in ARM_CPUS.items()}}
        try:
            import onnxruntime as ort  # noqa: PLC0415 - availability is a value: a broken host onnxruntime is not fatal

            if ort.__version__ != ort_arm:
                reason += f" (host onnxruntime is {ort.__version__}: rebuild with {SETUP_COMMAND} --force to match)"
        except ImportError:
            pass
        return Availability(self.name, True, reason, None, details)

    def command(self, request_path: str) -> tuple[list[str], dict | None]:
        qemu = self.qemu()
        return (emulated_command(self.sysroot, qemu, [str(WORKER), request_path]),
                emulated_env(self.sysroot, self.qemu_cpu))
