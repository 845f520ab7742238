"""A working session: one model, its calibration and evaluation data, a recipe, and what was derived.

The CLI and the GUI both drive this object, so everything a button does is a method here. Expensive
results (prepared model, histograms, quantized model) are computed on first use and reused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from analyzers.calibration.collect import CalibrationData
from backends.tasks import NullTask, Task

from .calibration_cache import calibrate, missing_histograms, take_fused_away
from .data import DataSource, open_data
from .errors import DataError, WorkbenchError
from .model_loader import is_factory_spec
from .model_prep import PreparedModel, prepare_model
from .paths import cache_dir, prefetch_sha256, sha256_bytes
from .quantize import QuantizeResult, quantize
from .recipe import Recipe
from .recipe_ranges import CalibrationIncomplete


@dataclass
class SessionSpec:
    """What the user chose: paths/specs only, so it can be saved in a project and reopened."""

    model: str
    calib: str
    eval: str | None = None
    recipe_path: str | None = None
    trust_code: bool = False  # the user allowed a PyTorch model or factory to run its code; never saved in a project


class Session:
    """Model + data + recipe, with lazily computed calibration and quantization."""

    def __init__(self, model: str | Path, calib: str | Path, eval: str | Path | None = None,
                 recipe: Recipe | None = None, recipe_path: str | Path | None = None, preprocess: str = "auto",
                 trust_code: bool = False):
        self.recipe = recipe if recipe is not None else (Recipe.load(recipe_path) if recipe_path else Recipe())
        self.spec = SessionSpec(str(model), str(calib), str(eval) if eval else None,
                                str(recipe_path) if recipe_path else None, trust_code)
        prefetch_sha256(*(p for p in (calib, eval) if p and Path(str(p)).suffix.lower() in (".npz", ".npy")))
        example = None
        model_s = str(model)
        if is_factory_spec(model_s) or Path(model_s).suffix.lower() not in ("", ".onnx"):
            example = self._peek_example(calib)
        self.prepared: PreparedModel = prepare_model(model, preprocess=preprocess, example_input=example,
                                                     trust_code=trust_code)
        self.recipe.validate(self.prepared.graph.node_names, [t.name for t in self.prepared.graph.outputs])
        pre = self.recipe.preprocess
        self.calib_data: DataSource = open_data(calib, self.prepared.graph.inputs, pre, role="calibration")
        self.eval_data: DataSource = (open_data(eval, self.prepared.graph.inputs, pre, role="evaluation")
                                      if eval else self.calib_data)
        self._calibration: CalibrationData | None = None
        self.calibration_from_cache = False
        self.analysis_cache: dict = {}  # figures reusable between analysis runs on the same data
        # default output path -> (result, calibration it came from, checked, file mtime_ns and size)
        self._quantized: dict[Path, tuple[QuantizeResult, int, bool, int, int]] = {}

    @staticmethod
    def _peek_example(calib) -> dict | None:
        """The first calibration sample, to give PyTorch artefacts that lack them their input shapes."""

        p = Path(str(calib))
        try:
            if p.suffix == ".npz":
                with np.load(p) as z:
                    return {k: z[k][:1] for k in z.files if k != "labels"}
            if p.suffix == ".npy":
                return {"input": np.load(p)[:1]}
        except Exception as e:  # noqa: BLE001
            raise DataError(f"could not read {p} ({e})", "pass a valid .npz or .npy file") from e
        return None

    @property
    def graph(self):
        return self.prepared.graph

    def calibration(self, task: Task | None = None, recipe: Recipe | None = None,
                    complete: bool = False) -> CalibrationData:
        """The calibration histograms, collected once (or loaded from the cache) and kept: every tensor ``recipe``
        (default: the session's) quantizes with its own range, or, ``complete``, every tensor to quantize (the
        calibration lab's and tune's view). Completing it later adds the tensors left out to the same object."""
        r = recipe or self.recipe
        if self._calibration is None:
            self._calibration, self.calibration_from_cache = calibrate(self.prepared, self.calib_data, r, task,
                                                                       complete=complete)
        elif self._calibration.fused_away and (complete or missing_histograms(self.graph, r, self._calibration)):
            take_fused_away(self.prepared, self.calib_data, self._calibration, task)
        return self._calibration

    def default_output_path(self, recipe: Recipe | None = None) -> Path:
        r = recipe or self.recipe
        # how outputs are judged does not change the quantized model: keep [outputs] out of the key
        quant = replace(r, outputs={})
        key = sha256_bytes(self.prepared.sha256.encode(), quant.dumps().encode(), self.calib_data.content_hash().encode())
        return cache_dir() / "quantized" / f"{self.prepared.name}-{key[:12]}.qdq.onnx"

    def quantize(self, out_path: str | Path | None = None, recipe: Recipe | None = None,
                 task: Task | None = None, check: bool = False) -> QuantizeResult:
        """Quantize with ``recipe`` (default: the session's), reusing the calibration histograms; with
        ``check``, the model is written only once onnxruntime has run it on a calibration sample."""
        r = recipe or self.recipe
        calib = self.calibration(task, r)
        out = Path(out_path) if out_path else self.default_output_path(r)
        if out.resolve() == self.prepared.path.resolve() or (
                Path(self.spec.model).exists() and out.resolve() == Path(self.spec.model).resolve()):
            raise WorkbenchError(f"refusing to overwrite the input model {out}", "choose another -o path")
        if out_path is None:  # the default path is named by model, recipe and data: the same file, unless touched
            got = self._reuse_quantized(out, calib, check)
            if got is not None:
                return got
        feed = self.calib_data.sample(0) if check else None
        try:
            result = quantize(self.prepared, r, calib, out, task, check_feed=feed)
        except CalibrationIncomplete:  # the mask path keeps an activation in float: its input needs its own range
            result = quantize(self.prepared, r, self.calibration(task, complete=True), out, task, check_feed=feed)
        if out_path is None:
            st = out.stat()
            self._quantized[out] = (result, id(calib), check, st.st_mtime_ns, st.st_size)
        return result

    def _reuse_quantized(self, out: Path, calib: CalibrationData, check: bool) -> QuantizeResult | None:
        """This session's earlier result for ``out`` while its file is untouched and came from the same
        histograms: analysing, evaluating and exporting one recipe then quantize once (0.9 s on a 224-px
        MobileNetV2), and the GUI's re-runs of an unchanged recipe too."""
        got = self._quantized.get(out)
        if got is None:
            return None
        result, calib_id, checked, mtime, size = got
        try:
            st = out.stat()
        except OSError:
            return None
        if calib_id != id(calib) or (check and not checked) or (st.st_mtime_ns, st.st_size) != (mtime, size):
            return None
        return result


def open_session(spec: SessionSpec, recipe: Recipe | None = None, task: Task | None = None, calibrate: bool = False,
                 preprocess: str = "auto") -> Session:
    """The one way the CLI, the report export and the GUI's engine process open a Session.

    ``recipe`` overrides the file named by ``spec.recipe_path`` (loaded when no recipe is given); with
    ``calibrate`` the calibration histograms are collected (or loaded from the cache) now, reporting to
    ``task``, instead of on first use.
    """
    task = task or NullTask()
    task.report(0.0, "preparing the model")
    session = Session(spec.model, spec.calib, spec.eval, recipe=recipe, recipe_path=spec.recipe_path,
                      preprocess=preprocess, trust_code=spec.trust_code)
    task.check()
    if calibrate:
        session.calibration(task)
        task.report(1.0, "calibration ready")
    return session
