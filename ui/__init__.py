"""The desktop GUI: the only package that imports Qt (PySide6) and pyqtgraph."""

from __future__ import annotations

import ctypes
import sys


def _guard_singleton_refcounts() -> None:
    """Work around PySide6 6.12 dropping a reference to ``None`` on every call of a ``void`` Qt method.

    On CPython 3.12+ ``None``/``True``/``False`` are immortal (PEP 683) and the missing increment is
    harmless; on 3.11 it counts ``None`` down until the interpreter aborts with "none_dealloc:
    deallocating None" (measured: ``QWidget.setEnabled`` lowers ``sys.getrefcount(None)`` by exactly
    one per call; a session of a few minutes makes enough calls). Raising their reference counts far out
    of reach makes them immortal in effect, as they are on 3.12. Nothing is ever freed by this: these
    objects live as long as the interpreter anyway.
    """
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython" or hasattr(sys, "gettotalrefcount"):
        return  # immortal already, or a debug build whose object header differs

    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40


_guard_singleton_refcounts()
