"""Export the INT8 model a run analysed, with the recipe that made it, for deployment outside the app.

The run's INT8 model lives in the cache (keyed by content); a user wants it under their own name, next to
the recipe (TOML) that ``qwb quantize MODEL --recipe ...`` reproduces it with. Written atomically, never
over the model or data it came from (``workbench.safe_paths``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import WorkbenchError
from ..safe_paths import atomic_output, check_outputs, write_text
from ..session import SessionSpec
from .workspace import Run


@dataclass(frozen=True)
class ExportedModel:
    """The files written: the INT8 model and its recipe."""

    model: Path
    recipe: Path

    def reproduce(self, source_model: str, calib: str) -> str:
        """The command that quantizes the same model again from the source model."""
        return (f"qwb quantize {source_model} --calib {calib} --recipe {self.recipe.name} "
                f"-o {self.model.name}")


def recipe_path_for(model_path: Path) -> Path:
    """``resnet_int8.onnx`` -> ``resnet_int8.recipe.toml`` (beside it)."""
    return model_path.with_name(model_path.stem + ".recipe.toml")


def export_int8(run: Run, path: str | Path, spec: SessionSpec | None = None) -> ExportedModel:
    """Copy ``run``'s INT8 model to ``path`` (``.onnx`` added when missing) and its recipe beside it."""
    if not run.result.int8_model or not Path(run.result.int8_model).is_file():
        raise WorkbenchError(f"the INT8 model of {run.label} is no longer in the cache",
                             "re-run the analysis (F5), then export again")
    out = Path(path)
    if out.suffix.lower() != ".onnx":
        out = out.with_name(out.name + ".onnx")
    recipe = recipe_path_for(out)
    inputs = [("INT8 model", run.result.int8_model)]
    if spec is not None:
        inputs += [("model", spec.model), ("calibration data", spec.calib), ("evaluation data", spec.eval)]
    check_outputs([out, recipe], inputs)
    src = Path(run.result.int8_model)
    sidecars = [p for p in src.parent.glob(src.name + ".data") if p.is_file()]  # external weights (> 2 GB models)
    try:
        with atomic_output(out) as tmp:
            shutil.copyfile(src, tmp)
        for side in sidecars:
            with atomic_output(out.parent / side.name) as tmp:
                shutil.copyfile(side, tmp)
    except OSError as e:
        raise WorkbenchError(f"could not write {out} ({e.strerror or e})", "choose a folder you can write to") from e
    write_text(recipe, run.recipe.dumps())
    return ExportedModel(out, recipe)
