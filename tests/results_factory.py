"""Hand-built ``AnalysisResult`` objects for unit tests of code that only reads results.

Flows that need real numbers use the real engine (``workbench.analysis.analyze``); these stand-ins
exercise views, comparisons and project files without running a model.
"""

from __future__ import annotations

import numpy as np

from analyzers.diff_types import AnalysisResult, ErrorMetrics, Hint, LayerResult, OutputResult


def metrics(db: float) -> ErrorMetrics:
    return ErrorMetrics(db, db - 1.0, db - 4.0, 10 ** (-db / 10), 0.999, 0.1, 0.001)


def make_result(nodes: list[tuple[str, str]], iso: list[float], cum: list[float], precisions=None,
                accuracy_int8: float = 0.95, samples: int = 8, flagged_below: float = 20.0) -> AnalysisResult:
    """A result for ``nodes`` ((name, op_type) in topological order) with the given SQNRs."""
    precisions = precisions or ["int8"] * len(nodes)
    layers = []
    for i, ((name, op), a, c, p) in enumerate(zip(nodes, iso, cum, precisions)):
        hints = [Hint("outliers", f"{name}: rare outliers take most of the range", "try percentile 99.99", 0.6)] \
            if a < flagged_below else []
        layers.append(LayerResult(name, op, f"{name}_out", f"{name}_out_dq", p, i, i, metrics(c), metrics(a),
                                  None, a - c, 0.5, 0.0, a < flagged_below, hints))
    heat = np.tile(np.array(cum, dtype=float), (samples, 1))
    out = OutputResult("y", float(cum[-1]), 0.99, 0.9 + accuracy_int8 / 20, 0.97, accuracy_int8)
    return AnalysisResult("model.onnx", {"version": 1}, samples, 0.5, 100.0, [out], layers, heatmap=heat,
                          reservoirs={f"{nodes[0][0]}_out": (np.arange(5.0), np.arange(5.0) + 0.1)})
