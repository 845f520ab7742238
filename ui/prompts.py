"""Every question the app asks the user, in one replaceable object.

Modal questions block an event loop; tests (and scripts) swap in an object that answers at once,
so the real flows — close with unsaved work, restore after a crash — are driven without a person.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from workbench.app.project import SUFFIX


class Prompter:
    """Questions asked with standard Qt dialogs."""

    def __init__(self, parent: QWidget):
        self.parent = parent

    def save_changes(self) -> str:
        """'save', 'discard' or 'cancel' for unsaved work when closing or opening something else."""
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved work",
                          "The recipe or results changed since the project was last saved. Save them?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self.parent)
        r = box.exec()
        return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
            QMessageBox.StandardButton(r), "cancel")

    def restore(self, description: str) -> bool:
        r = QMessageBox.question(self.parent, "Restore unsaved work?",
                                 f"Quant Workbench did not shut down cleanly last time. Restore the work it "
                                 f"autosaved?\n\n{description}",
                                 QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)
        return r == QMessageBox.StandardButton.Yes

    def trust_model_code(self, model: str, what: str) -> bool:
        """Whether to open a model that runs code (PyTorch files, factories), naming it and what would run."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Run code from this model?",
                          f"Opening {model} runs code on this computer: Quant Workbench {what}.\n\n"
                          "Only allow it for files and modules you trust. Open it?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.parent)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Yes

    def replace_file(self, path: str, what: str) -> bool:
        """Whether to replace the existing ``path`` (the save dialog asked about another name: it added none)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Replace the file?",
                          f"{path} already exists ({what}). Replace it?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.parent)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        return QMessageBox.StandardButton(box.exec()) == QMessageBox.StandardButton.Yes

    def save_path(self, title: str, start: str, file_filter: str = f"Projects (*{SUFFIX})") -> str | None:
        path, _ = QFileDialog.getSaveFileName(self.parent, title, start, file_filter)
        return path or None

    def open_path(self, title: str, start: str, file_filter: str) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self.parent, title, start, file_filter)
        return path or None
