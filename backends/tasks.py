"""The progress/cancel protocol every long piece of work accepts, so GUI workers and the CLI drive it alike.

Any object with ``report(fraction, message)`` and ``check()`` works; ``check()`` raises the caller's own
cancellation exception when the user asked to stop (the library never defines one). ``scaled`` maps a
sub-step's 0..1 progress into a slice of the caller's bar. It lives in ``backends``, the lowest layer, so
analyzers, the engine, reports and the GUI's engine process all share this one definition.
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    """What long backend work tells its caller (progress) and asks it (should I stop?)."""

    def report(self, fraction: float, message: str = "") -> None: ...

    def check(self) -> None: ...


class NullTask:
    """No progress shown, never cancelled."""

    def report(self, fraction: float, message: str = "") -> None:
        pass

    def check(self) -> None:
        pass


class scaled:  # noqa: N801 - used like a function: scaled(task, 0.2, 0.5)
    """A view of ``task`` whose 0..1 progress fills the ``[lo, hi]`` part of the parent's progress."""

    def __init__(self, task: Task | None, lo: float, hi: float):
        self.task, self.lo, self.hi = task if task is not None else NullTask(), lo, hi

    def report(self, fraction: float, message: str = "") -> None:
        self.task.report(self.lo + (self.hi - self.lo) * min(max(fraction, 0.0), 1.0), message)

    def check(self) -> None:
        self.task.check()
