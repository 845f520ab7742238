"""onnxruntime's CUDA provider, and its TensorRT provider when the build has it.

Available only with a GPU build of onnxruntime (``onnxruntime-gpu``) *and* an NVIDIA GPU this process
can see; each missing piece is its own reason. A GPU build whose CUDA libraries fail to load is caught
when the session starts (onnxruntime would otherwise fall back to the CPU silently and we would time
the wrong thing).
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from .availability import Availability
from .base import Backend

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
GPU_FIX = ("pip uninstall -y onnxruntime && pip install onnxruntime-gpu, on a machine with an NVIDIA GPU and "
           "driver (CUDA 12 / cuDNN 9 libraries: pip install 'onnxruntime-gpu[cuda,cudnn]')")


def visible_gpus(proc_dir: Path = NVIDIA_PROC, env: dict | None = None) -> tuple[list[str], str]:
    """Names of the NVIDIA GPUs the driver lists, and why none are visible when the list is empty."""
    env = os.environ if env is None else env
    mask = env.get("CUDA_VISIBLE_DEVICES")
    if mask is not None and mask.strip() in ("", "-1"):
        return [], f"CUDA_VISIBLE_DEVICES={mask!r} hides every GPU"
    if not proc_dir.is_dir():
        return [], "no NVIDIA driver is loaded (no /proc/driver/nvidia)"
    names = []
    for info in sorted(proc_dir.glob("*/information")):
        model = next((ln.split(":", 1)[1].strip() for ln in info.read_text(errors="replace").splitlines()
                      if ln.startswith("Model:")), info.parent.name)
        names.append(model)
    return names, "" if names else "the NVIDIA driver lists no GPU"


class CudaBackend(Backend):
    """CUDA (and TensorRT when present) through onnxruntime-gpu."""

    name = "cuda"
    description = "onnxruntime CUDA / TensorRT execution providers"

    def __init__(self, providers: list[str] | None = None, gpus: tuple[list[str], str] | None = None):
        self._providers, self._gpus = providers, gpus

    def _available_providers(self) -> tuple[list[str], str]:

        providers = self._providers if self._providers is not None else list(ort.get_available_providers())
        return providers, ort.__version__

    def has_tensorrt(self) -> bool:
        """TensorRT goes first when the build has it: it is where NVIDIA GPUs run INT8."""
        return "TensorrtExecutionProvider" in self._available_providers()[0]

    def availability(self) -> Availability:
        try:
            providers, version = self._available_providers()
        except ImportError as e:
            return Availability(self.name, False, f"onnxruntime does not import ({e})", GPU_FIX)
        if "CUDAExecutionProvider" not in providers:
            return Availability(self.name, False, f"onnxruntime {version} here is the CPU-only build (its providers: "
                                f"{', '.join(providers)}); CUDA needs the GPU build", GPU_FIX,
                                {"providers": providers})
        gpus, why = self._gpus if self._gpus is not None else visible_gpus()
        if not gpus:
            return Availability(self.name, False, f"onnxruntime-gpu {version} is installed but no NVIDIA GPU is "
                                f"visible: {why}", "run on a machine with an NVIDIA GPU and its driver "
                                "(nvidia-smi must list it), and leave CUDA_VISIBLE_DEVICES unset",
                                {"providers": providers})
        trt = "TensorrtExecutionProvider" in providers
        reason = f"onnxruntime-gpu {version} on {', '.join(gpus)}; CUDA provider" + (" + TensorRT" if trt else "")
        return Availability(self.name, True, reason, None, {"gpus": gpus, "tensorrt": trt, "providers": providers})

    def providers(self, threads: int) -> list:
        out = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return (["TensorrtExecutionProvider"] + out) if self.has_tensorrt() else out

    def coverage_providers(self, threads: int) -> list:
        # TensorRT compiles whole subgraphs (its INT8 use is invisible to onnxruntime and the graph cannot
        # be saved), so coverage is read with the CUDA provider
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def required_providers(self) -> list[str]:
        return ["CUDAExecutionProvider"]
