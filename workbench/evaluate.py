"""Task accuracy of a model file on labelled data: the number users compare first (FP32 vs INT8)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analyzers.diff_types import OutputResult
from analyzers.output_kinds import OutputKind
from analyzers.output_metrics import OutputAccumulator
from backends.runner import SessionConfig, build_session
from backends.tasks import NullTask, Task

from .data import DataSource


@dataclass
class Accuracy:
    """Top-1 accuracy of the model's first output against integer labels."""

    output: str
    correct: int
    total: int

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def is_classifier_output(shape) -> bool:
    """[batch, classes] with more than one class: argmax is a prediction."""
    return shape is not None and len(shape) == 2 and (not isinstance(shape[1], int) or shape[1] > 1)


def predictions(model_path: str | Path, data: DataSource, output_index: int = 0, task: Task | None = None) -> np.ndarray:
    """Argmax of output ``output_index`` for every sample (the model runs with full optimizations)."""
    task = task or NullTask()
    sess = build_session(SessionConfig.for_purpose("deployed", str(model_path)))
    name = sess.get_outputs()[output_index].name
    preds = []
    for start, stop, feed in data.batches():
        task.check()
        out = sess.run([name], feed)[0]
        preds.append(np.asarray(out).reshape(stop - start, -1).argmax(axis=1))
        task.report(stop / len(data), "evaluating")
    return np.concatenate(preds)


def accuracy(model_path: str | Path, data: DataSource, task: Task | None = None) -> Accuracy | None:
    """Top-1 accuracy, or None when the data has no class labels."""
    if data.labels is None or data.labels.ndim != 1:
        return None
    p = predictions(model_path, data, task=task)
    return Accuracy("", int((p == data.labels[: len(p)]).sum()), len(p))


def output_agreement(fp32_path: str | Path, int8_path: str | Path, data: DataSource, kinds: dict[str, OutputKind],
                     task: Task | None = None) -> list[OutputResult]:
    """FP32 vs INT8 at every output, by its kind, as deployed (full optimizations): what `qwb quantize` prints
    when accuracy cannot say it (no class labels, or not a classifier). Streams: memory is flat in samples."""
    task = task or NullTask()
    fs = build_session(SessionConfig.for_purpose("deployed", str(fp32_path)))
    qs = build_session(SessionConfig.for_purpose("deployed", str(int8_path)))
    names = [o.name for o in fs.get_outputs()]
    acc = {n: OutputAccumulator(kinds[n]) for n in names}
    labels = data.labels
    for start, stop, feed in data.batches():
        task.check()
        for n, x, y in zip(names, fs.run(names, feed), qs.run(names, feed)):
            acc[n].update(x, y, None if labels is None else labels[start:stop])
        task.report(stop / len(data), "comparing FP32 and INT8 outputs")
    return [acc[n].result() for n in names]
