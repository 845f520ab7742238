"""Streaming FP32-vs-INT8 figures for a model output, by its kind (``analyzers.output_kinds``).

Like ``metrics.ErrorAccumulator``, each accumulator folds in one batch at a time into running counts, so
memory does not grow with the number of samples (a classifier keeps one counter triple per class).
Labels are aligned with the samples of each batch: a classifier takes integer class labels [N]; a sequence
output takes label sequences [N, L] padded with -1 (compared with the greedy CTC decode).
"""

from __future__ import annotations

import math

import numpy as np

from .diff_types import ClassAccuracy, OutputResult
from .metrics import ErrorAccumulator
from .output_kinds import OutputKind


def ctc_greedy_decode(steps: np.ndarray, blank: int = 0) -> list[int]:
    """Greedy CTC decode of one sample's per-step class ids: collapse repeats, then drop the blank."""
    steps = np.asarray(steps).ravel()
    if steps.size == 0:
        return []
    keep = np.ones(steps.size, bool)
    keep[1:] = steps[1:] != steps[:-1]
    s = steps[keep]
    return s[s != blank].tolist()


def label_sequence(row: np.ndarray) -> list[int]:
    """One padded label row as a sequence (-1 marks padding)."""
    row = np.asarray(row).ravel()
    return row[row >= 0].tolist()


def row_cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine of each sample's (row's) FP32 and INT8 vectors; 1 when both are zero, 0 when one is."""
    a = np.asarray(x, np.float64).reshape(len(x), -1)
    b = np.asarray(y, np.float64).reshape(len(y), -1)
    dot, na, nb = (a * b).sum(1), (a * a).sum(1), (b * b).sum(1)
    den = np.sqrt(na * nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(den > 0, dot / np.where(den > 0, den, 1.0), np.where((na == 0) & (nb == 0), 1.0, 0.0))
    return np.clip(c, -1.0, 1.0)


class ClassifierAccumulator:
    """Top-1 agreement, and with labels accuracy FP32/INT8 overall and per class."""

    def __init__(self):
        self.agree = self.total = 0
        self.classes: dict[int, list[int]] = {}  # label -> [count, fp32 correct, int8 correct]

    def update(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None) -> None:
        pf = np.asarray(x).reshape(len(x), -1).argmax(1)
        pq = np.asarray(y).reshape(len(y), -1).argmax(1)
        self.agree += int((pf == pq).sum())
        self.total += len(pf)
        if labels is None or np.asarray(labels).ndim != 1:
            return
        lab = np.asarray(labels)
        for c in np.unique(lab):
            sel = lab == c
            row = self.classes.setdefault(int(c), [0, 0, 0])
            row[0] += int(sel.sum())
            row[1] += int((pf[sel] == c).sum())
            row[2] += int((pq[sel] == c).sum())

    def fill(self, r: OutputResult) -> None:
        if self.total:
            r.top1_agreement = self.agree / self.total
        if self.classes:
            n = sum(c[0] for c in self.classes.values())
            r.accuracy_fp32 = sum(c[1] for c in self.classes.values()) / n
            r.accuracy_int8 = sum(c[2] for c in self.classes.values()) / n
            r.per_class = [ClassAccuracy(k, c[0], c[1] / c[0], c[2] / c[0]) for k, c in sorted(self.classes.items())]


class EmbeddingAccumulator:
    """Per-sample cosine between the FP32 and INT8 vectors: mean and worst."""

    def __init__(self):
        self.sum = 0.0
        self.min = math.inf
        self.count = 0

    def update(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None) -> None:
        c = row_cosines(x, y)
        if c.size:
            self.sum += float(c.sum())
            self.min = min(self.min, float(c.min()))
            self.count += c.size

    def fill(self, r: OutputResult) -> None:
        if self.count:
            r.cosine_mean = self.sum / self.count
            r.cosine_min = self.min


class SequenceAccumulator:
    """Per-step argmax agreement, greedy-CTC-decode agreement, and exact match against label sequences."""

    def __init__(self, batch_axis: int = 0, blank: int = 0):
        self.batch_axis = batch_axis
        self.blank = blank
        self.steps_agree = self.steps = 0
        self.seq_agree = self.seqs = 0
        self.fp32_match = self.int8_match = self.labelled = 0

    def update(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None) -> None:
        if x.ndim != 3:
            raise ValueError(f"a sequence output must have rank 3 ([N, T, C] or [T, N, C]), not {x.shape}")
        pf = np.moveaxis(np.asarray(x).argmax(-1), self.batch_axis, 0)  # [N, T]
        pq = np.moveaxis(np.asarray(y).argmax(-1), self.batch_axis, 0)
        self.steps_agree += int((pf == pq).sum())
        self.steps += pf.size
        lab = np.asarray(labels) if labels is not None and np.asarray(labels).ndim == 2 else None
        for i in range(pf.shape[0]):
            df, dq = ctc_greedy_decode(pf[i], self.blank), ctc_greedy_decode(pq[i], self.blank)
            self.seq_agree += df == dq
            self.seqs += 1
            if lab is not None:
                want = label_sequence(lab[i])
                self.fp32_match += df == want
                self.int8_match += dq == want
                self.labelled += 1

    def fill(self, r: OutputResult) -> None:
        if self.steps:
            r.step_agreement = self.steps_agree / self.steps
        if self.seqs:
            r.sequence_match = self.seq_agree / self.seqs
        if self.labelled:
            r.accuracy_fp32 = self.fp32_match / self.labelled
            r.accuracy_int8 = self.int8_match / self.labelled


class DenseAccumulator:
    """Dense and regression outputs: SQNR and max-abs come from the error accumulator alone."""

    def update(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None) -> None:
        pass

    def fill(self, r: OutputResult) -> None:
        pass


class OutputAccumulator:
    """Every figure of one model output: the shared error metrics plus its kind's own."""

    def __init__(self, kind: OutputKind, batched: bool = True):
        self.kind = kind
        self.batched = batched
        self.error = ErrorAccumulator(None, batched)
        self.by_kind = {"classifier": ClassifierAccumulator, "embedding": EmbeddingAccumulator,
                        "sequence": lambda: SequenceAccumulator(kind.batch_axis, kind.blank),
                        "dense": DenseAccumulator}[kind.kind]()

    def update(self, x: np.ndarray, y: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Fold in one batch of FP32 (``x``) and INT8 (``y``) outputs; ``labels``: this batch's labels or None."""
        self.error.update(x, y)
        if not self.batched:  # one sample without a batch axis
            x, y = np.asarray(x)[None], np.asarray(y)[None]
            labels = None if labels is None else np.asarray(labels)[:1]
        self.by_kind.update(np.asarray(x), np.asarray(y), labels)

    def result(self) -> OutputResult:
        m = self.error.result()
        r = OutputResult(self.kind.name, m.sqnr_db, m.cosine, kind=self.kind.kind, max_abs=m.max_abs)
        self.by_kind.fill(r)
        return r
