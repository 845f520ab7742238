"""The progress/cancel protocol long analyses accept, so GUI workers and the CLI can drive them alike.

Callers pass any object with ``report(fraction, message)`` and ``check()``; ``check()`` raises the
caller's own cancellation exception when the user asked to stop. The library never defines one.
"""

from __future__ import annotations

from typing import Protocol


class Task(Protocol):
    """What a long computation may tell its caller and ask it."""

    def report(self, fraction: float, message: str = "") -> None: ...

    def check(self) -> None: ...


class NullTask:
    """No progress display and never cancelled (scripts and tests)."""

    def report(self, fraction: float, message: str = "") -> None:  # noqa: D401 - protocol method
        pass

    def check(self) -> None:
        pass
