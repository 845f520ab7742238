"""Progress slices: a report is several long steps (analyses, benchmarks), each given part of one bar."""

from __future__ import annotations


class SubTask:
    """Maps a step's 0..1 progress onto [lo, hi] of the caller's task; passes cancellation checks through."""

    def __init__(self, task, lo: float, hi: float):
        self.task, self.lo, self.hi = task, lo, hi

    def report(self, fraction: float, message: str = "") -> None:
        if self.task is not None:
            self.task.report(self.lo + (self.hi - self.lo) * max(0.0, min(1.0, fraction)), message)

    def check(self) -> None:
        if self.task is not None:
            self.task.check()
