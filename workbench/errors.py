"""User-facing errors.

Every problem a user can cause (a bad file, data that does not fit the model, a recipe that names
missing layers, an unavailable backend) is raised as a ``WorkbenchError``: one message that names the
file or input and says how to fix it. The CLI prints it without a traceback; the GUI shows it in a
dialog. Anything else that escapes is a bug in Quant Workbench.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A problem the user can fix; ``str()`` is the whole message, including the fix."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message}\n  Fix: {fix}")


class ModelLoadError(WorkbenchError):
    """The model file is missing, corrupt, not ONNX, or fails validation."""


class DataError(WorkbenchError):
    """Calibration or evaluation data is missing, empty, or does not match the model's inputs."""


class RecipeError(WorkbenchError):
    """The recipe file is malformed or names layers/settings that do not exist."""


class CancelledError(WorkbenchError):
    """A long run was cancelled by the user; not a failure."""

    def __init__(self, message: str = "Cancelled by the user."):
        super().__init__(message)
