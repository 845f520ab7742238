"""Calibration: everything about activation histograms and the ranges derived from them.

One module per idea, each importable on its own (this package imports nothing, so the GUI can unpickle
packed histograms without loading onnx or onnxruntime):

- ``histogram``: the streaming power-of-two histogram (fixed memory, exact widening) and its snapshot.
- ``grid``: the integer grid a tensor is quantized onto (``QuantSpec``) and onnxruntime's scale/zero-point.
- ``methods``: MinMax / Percentile / Entropy / MSE ranges from a histogram, and the error a range predicts.
- ``collect``: the one pass over calibration samples that fills the histograms, plus weight statistics.
- ``clipping``: a clip line dragged on a histogram <-> the percentile that puts the range there.
- ``compact``: histograms packed small for the trip from the engine process to the GUI.

What depends on a recipe or a session (which tensors, the on-disk cache, the range each tensor gets under
a recipe) is in ``workbench.calibration_cache`` and ``workbench.recipe_ranges``.
"""
