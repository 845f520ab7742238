"""Numbers about quantization: histograms and calibration ranges, FP32-vs-INT8 diffing, metrics, ranking.

A library: it speaks ONNX models, numpy arrays and its own small dataclasses, and never imports
``workbench`` or ``ui``.
"""
