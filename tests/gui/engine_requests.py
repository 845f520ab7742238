"""Requests the GUI tests send to the engine process, and their handlers.

Module-level so they can be pickled; the engine process imports this module when it unpickles one of these
requests, which registers their handlers there (``workbench.app.requests.handles``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from workbench.app.requests import handles


@dataclass(frozen=True)
class Crash:
    code: int


@dataclass(frozen=True)
class Add:
    a: int
    b: int


@handles(Crash)
def crash(req: Crash, state, task) -> None:
    """Die the way a segfault in a native library would: no exception, no reply."""
    os._exit(req.code)


@handles(Add)
def add(req: Add, state, task) -> int:
    task.report(1.0, "adding")
    return req.a + req.b
