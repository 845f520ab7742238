"""The one exception the backends library raises for problems a caller can fix.

It carries a ``fix`` like ``workbench.errors.WorkbenchError`` does, but the library cannot import
``workbench`` (it sits below it), so the workbench turns a ``BackendError`` into its own error type.
"""

from __future__ import annotations


class BackendError(Exception):
    """A problem the user can fix (missing tool, bad settings, unavailable backend), with the fix."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message}\n  Fix: {fix}")
