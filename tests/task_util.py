"""A progress task for tests that cancels on a chosen ``check()``, as the GUI's Cancel button does."""

from __future__ import annotations


class CancelOnCheck:
    """Raises ``error`` from the ``at``-th ``check()`` call (1-based); ``report`` records nothing."""

    def __init__(self, at: int, error: type[Exception]):
        self.at, self.error, self.checks = at, error, 0

    def report(self, fraction, message=""):
        pass

    def check(self):
        self.checks += 1
        if self.checks >= self.at:
            raise self.error()
