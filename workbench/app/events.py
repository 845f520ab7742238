"""A tiny observer: Qt-free models announce changes; views (Qt or not) subscribe.

napari's idea at the smallest useful size: the model never knows a view exists, and tests of the
model need no event loop. Callbacks run synchronously on the thread that changed the model, which
for the GUI is always the GUI thread (workers hand results back through queued signals first).
"""

from __future__ import annotations

from typing import Any, Callable


class Event:
    """One kind of change; ``emit(*args)`` calls every connected callback in connection order."""

    def __init__(self, name: str = ""):
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = 0

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        """Remove ``callback`` (or every callback when None); unknown callbacks are ignored."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for cb in list(self._callbacks):
            cb(*args)

    def blocked(self):
        """Context manager that suppresses emission (batch updates emit once afterwards)."""
        event = self

        class _Block:
            def __enter__(self):
                event._blocked += 1

            def __exit__(self, *exc):
                event._blocked -= 1

        return _Block()


class EventGroup:
    """A namespace of events, e.g. ``workspace.events.recipe.connect(...)``."""

    def __init__(self, *names: str):
        for n in names:
            setattr(self, n, Event(n))
        self._names = names

    def disconnect_all(self) -> None:
        for n in self._names:
            getattr(self, n).disconnect()
