"""Choose a model and its calibration / evaluation data (and optionally a recipe) in one dialog.

Data files next to the model are suggested (``*calib*.npz``, ``*eval*.npz``), so opening a model that
ships with its data is two clicks. Validation of the data against the model happens when it opens
(errors appear in the window's message bar).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from workbench.session import SessionSpec

MODEL_FILTER = "Models (*.onnx *.pt *.pt2);;All files (*)"
DATA_FILTER = "Data (*.npz *.npy);;All files (*)"


def guess_data(model: str) -> tuple[str | None, str | None]:
    """Calibration and evaluation files sitting next to ``model``, if any."""
    p = Path(model)
    if not p.parent.is_dir():
        return None, None
    files = sorted(p.parent.glob("*.np[zy]"))
    calib = next((f for f in files if "calib" in f.name.lower()), None)
    evalf = next((f for f in files if "eval" in f.name.lower() or "val" in f.name.lower() or "test" in f.name.lower()),
                 None)
    if calib is None and len(files) == 1:
        calib = files[0]
    return (str(calib) if calib else None), (str(evalf) if evalf else None)


class _PathField(QWidget):
    def __init__(self, placeholder: str, file_filter: str, folder_ok: bool = False, parent=None):
        super().__init__(parent)
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.edit.setMinimumWidth(420)
        self.filter = file_filter
        b = QPushButton("Browse…")
        b.clicked.connect(self._browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(b)
        if folder_ok:
            f = QPushButton("Folder…")
            f.setToolTip("A folder of images (one sub-folder per class gives labels)")
            f.clicked.connect(self._browse_folder)
            lay.addWidget(f)

    def _browse(self):
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", self.edit.text(), self.filter)
        if path:
            self.edit.setText(path)

    def _browse_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Choose an image folder", self.edit.text())
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text().strip()


class OpenDialog(QDialog):
    """Model, calibration data, evaluation data (optional), recipe (optional)."""

    def __init__(self, model: str = "", calib: str | None = None, eval: str | None = None, parent=None,
                 samples: int | None = None):
        super().__init__(parent)
        self.setWindowTitle("Open a model")
        self.model = _PathField("model.onnx, model.pt, model.pt2, or package.module:factory", MODEL_FILTER)
        self.calib = _PathField(".npz keyed by input names, .npy, an image folder, or synthetic:64", DATA_FILTER, True)
        self.eval = _PathField("optional: labelled data for accuracy (default: the calibration data)", DATA_FILTER,
                               True)
        self.recipe = _PathField("optional: recipe.toml with per-layer overrides", "Recipes (*.toml);;All files (*)")
        form = QFormLayout(self)
        form.addRow("Model", self.model)
        form.addRow("Calibration data", self.calib)
        form.addRow("Evaluation data", self.eval)
        form.addRow("Recipe", self.recipe)
        self.samples = QSpinBox()
        self.samples.setRange(0, 1_000_000)
        self.samples.setSpecialValueText("all")
        self.samples.setValue(samples or 0)
        self.samples.setToolTip("How many calibration samples each analysis compares FP32 and INT8 on (all: every "
                                "one). Fewer is faster on a large model; calibration always uses every sample. "
                                "Saved in the project; change it later in the Run panel.")
        form.addRow("Analysis samples", self.samples)
        self.message = QLabel()
        self.message.setStyleSheet("color:#b42318;")
        form.addRow(self.message)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.model.edit.editingFinished.connect(self._suggest)
        self.model.edit.setText(model)
        if calib:
            self.calib.edit.setText(calib)
        if eval:
            self.eval.edit.setText(eval)
        if model and not calib:
            self._suggest()

    def _suggest(self) -> None:
        if self.calib.text():
            return
        c, e = guess_data(self.model.text())
        if c:
            self.calib.edit.setText(c)
        if e and not self.eval.text():
            self.eval.edit.setText(e)

    def _accept(self) -> None:
        if not self.model.text():
            self.message.setText("Choose a model.")
            return
        if not self.calib.text():
            self.message.setText("Choose calibration data (or type synthetic:64 for a smoke test).")
            return
        self.accept()

    def analysis_samples(self) -> int:
        """The chosen sample count (0: all)."""
        return self.samples.value()

    def spec(self) -> SessionSpec:
        return SessionSpec(self.model.text(), self.calib.text(), self.eval.text() or None, self.recipe.text() or None)
