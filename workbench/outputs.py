"""The kind of each model output for a run: detected from the model, then the recipe's ``[outputs]`` and
``--metric`` overrides (``analyzers.output_kinds`` has the detection rules and why kinds matter)."""

from __future__ import annotations

import difflib

import numpy as np
import onnx

from analyzers.output_kinds import KINDS, OutputKind, apply_overrides, detect_kinds

from .errors import WorkbenchError
from .recipe import OutputSpec, Recipe


def output_kinds(model: onnx.ModelProto, recipe: Recipe, labels: np.ndarray | None = None) -> dict[str, OutputKind]:
    """Every output's kind under ``recipe``; a sequence override on an output that is not rank 3 is refused."""
    class_labels = labels is not None and np.asarray(labels).ndim == 1
    kinds = apply_overrides(detect_kinds(model, class_labels), recipe.output_overrides())
    ranks = {o.name: len(o.type.tensor_type.shape.dim) for o in model.graph.output
             if o.type.tensor_type.HasField("shape")}
    for k in kinds.values():
        if k.kind == "sequence" and ranks.get(k.name, 3) != 3:
            raise WorkbenchError(f"output {k.name!r} has rank {ranks[k.name]}, but a sequence output is [N, T, C] "
                                 "or [T, N, C]", f"judge it as another kind ({', '.join(KINDS)})")
    return kinds


def parse_metrics(values: list[str], output_names: list[str]) -> dict[str, str]:
    """``--metric`` values (``OUTPUT=KIND``, or ``KIND`` for every output) as {output: kind}."""
    out: dict[str, str] = {}
    for v in values:
        name, _, kind = v.rpartition("=")
        if kind not in KINDS:
            close = difflib.get_close_matches(kind, KINDS, n=1)
            raise WorkbenchError(f"--metric {v}: {kind!r} is not a kind" + (f" (did you mean {close[0]!r}?)"
                                                                             if close else ""),
                                 f"use --metric KIND or --metric OUTPUT=KIND with KIND one of {', '.join(KINDS)}")
        if not name:
            out.update({n: kind for n in output_names})
            continue
        if name not in output_names:
            close = difflib.get_close_matches(name, output_names, n=1)
            raise WorkbenchError(f"--metric {v}: the model has no output {name!r}"
                                 + (f" (did you mean {close[0]!r}?)" if close else ""),
                                 f"the model's outputs are: {', '.join(output_names)}")
        out[name] = kind
    return out


def with_metrics(recipe: Recipe, metrics: dict[str, str]) -> Recipe:
    """A copy of ``recipe`` whose ``[outputs]`` kinds are overridden by ``metrics`` (from ``parse_metrics``)."""
    r = recipe.copy()
    for name, kind in metrics.items():
        r.outputs.setdefault(name, OutputSpec()).kind = kind
    return r
