"""Where models run and are timed: onnxruntime CPU, CUDA/TensorRT, ARM64 NEON (native or emulated).

A library: it speaks ONNX files, numpy arrays and its own dataclasses, never imports ``workbench`` or
``ui``, and reports a backend's availability as a value with a reason instead of failing at import.
Importing it loads only the standard library; onnxruntime, onnx and numpy are imported when used.

Entry points: ``registry.make_backend(name)`` / ``all_backends()``, ``Backend.availability()``,
``benchmark.benchmark(backend, fp32, int8, feed, settings, task)`` returning a ``results.BackendResult``
(``to_dict()`` is the JSON contract), ``benchmark.int8_coverage`` for coverage alone, and
``arm_sysroot.build_sysroot`` for the emulated backend.
"""
