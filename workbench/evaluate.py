"""Task accuracy of a model file on labelled data: the number users compare first (FP32 vs INT8)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """Top-1 accuracy, or None when the data has no labels."""
    if data.labels is None:
        return None
    p = predictions(model_path, data, task=task)
    return Accuracy("", int((p == data.labels[: len(p)]).sum()), len(p))
