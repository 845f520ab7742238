"""Job functions the GUI tests send to the engine process (module-level so they can be pickled)."""

from __future__ import annotations

import os


def crash(code: int, task=None) -> None:
    """Die the way a segfault in a native library would: no exception, no reply."""
    os._exit(code)


def add(a: int, b: int, task=None) -> int:
    task.report(1.0, "adding")
    return a + b
