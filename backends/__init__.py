"""Where models run and are timed: onnxruntime CPU, CUDA/TensorRT, ARM64 NEON (native or emulated).

A library: it speaks ONNX files, numpy arrays and its own dataclasses, never imports ``workbench`` or
``ui``, and reports a backend's availability as a value with a reason instead of failing at import.
"""
