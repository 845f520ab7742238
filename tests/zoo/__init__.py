"""A zoo of small models with the export patterns real exporters write, built by code (nothing downloaded).

Each family lives in its own module with ``build(opset, **variant) -> ZooBuild`` (model, calibration data,
evaluation data). ``build(name)`` writes the model and its two .npz files once into a cache folder and
returns their paths; the folder is keyed by a hash of the builder's source (and this module's), so an edited
builder is rebuilt, and it is written to a temporary folder then renamed, so a half-written model is never
picked up. Cache: ``$QWB_ZOO_DIR``, else ``~/.cache/quant-workbench/zoo/``.

    from tests.zoo import ZOO, build
    paths = build("transformer_ninf_op17")   # ZooPaths(model, calib, eval)

Families (see each module's docstring): ``transformer`` (PyTorch BERT-style encoder, -inf / finfo.min / -1e4
padding masks), ``tf_cnn`` (tf2onnx-style SAME padding computed in the graph, swish, hard-swish, SE,
depthwise), ``seq_ctc`` (converter-style Constant weights, LSTM, CTC log-softmax, opset 11/12), ``detect``
(Resize, ConvTranspose, Concat of very different ranges, several outputs), ``control_flow`` (If and Loop).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

SEED = 0
CALIB_SAMPLES = 32
EVAL_SAMPLES = 48


@dataclass(frozen=True)
class ZooBuild:
    """What a builder returns: the model and its data, keyed by the model's input names (plus ``labels``)."""

    model: onnx.ModelProto
    calib: dict[str, np.ndarray]
    eval: dict[str, np.ndarray]


@dataclass(frozen=True)
class ZooPaths:
    model: Path
    calib: Path
    eval: Path


@dataclass(frozen=True)
class ZooModel:
    """One entry: a family module, the opset, and keyword arguments for its ``build``."""

    name: str
    family: str  # module under tests.zoo
    opset: int
    kind: str  # classifier | embedding | sequence | detection
    kwargs: dict = field(default_factory=dict)

    def module(self):
        return importlib.import_module(f"{__name__}.{self.family}")

    def key(self) -> str:
        """Hash of everything that decides the files: builder source, this module's source, arguments."""
        h = hashlib.sha256()
        h.update(inspect.getsource(self.module()).encode())
        h.update(inspect.getsource(_common()).encode())
        h.update(Path(__file__).read_bytes())
        h.update(repr((self.family, self.opset, sorted(self.kwargs.items()))).encode())
        return h.hexdigest()[:16]


def _common():
    return importlib.import_module(f"{__name__}.common")


def _entries() -> dict[str, ZooModel]:
    z: list[ZooModel] = []
    for op in (13, 17):
        for mask in ("ninf", "finfo"):
            z.append(ZooModel(f"transformer_{mask}_op{op}", "transformer", op, "embedding", {"mask": mask}))
    z.append(ZooModel("transformer_neg1e4_op13", "transformer", 13, "embedding", {"mask": "neg1e4"}))
    for op in (13, 17):
        z.append(ZooModel(f"tf_cnn_op{op}", "tf_cnn", op, "classifier"))
    for op in (11, 12):
        z.append(ZooModel(f"seq_ctc_op{op}", "seq_ctc", op, "sequence"))
    for op in (13, 17):
        z.append(ZooModel(f"detect_op{op}", "detect", op, "detection"))
    for op in (13, 17):
        z.append(ZooModel(f"control_flow_op{op}", "control_flow", op, "classifier"))
    return {m.name: m for m in z}


ZOO: dict[str, ZooModel] = _entries()


def zoo_dir() -> Path:
    d = os.environ.get("QWB_ZOO_DIR")
    return Path(d) if d else Path.home() / ".cache" / "quant-workbench" / "zoo"


def paths_in(folder: Path) -> ZooPaths:
    return ZooPaths(folder / "model.onnx", folder / "calib.npz", folder / "eval.npz")


def build(name: str, root: Path | None = None) -> ZooPaths:
    """The paths of zoo model ``name``, building it first when the cache has no current copy."""
    entry = ZOO[name]
    root = Path(root) if root else zoo_dir()
    folder = root / f"{name}-{entry.key()}"
    p = paths_in(folder)
    if p.model.exists() and p.calib.exists() and p.eval.exists():
        return p
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        b = entry.module().build(entry.opset, **entry.kwargs)
        onnx.checker.check_model(b.model)
        tp = paths_in(tmp)
        onnx.save(b.model, str(tp.model))
        np.savez(tp.calib, **b.calib)
        np.savez(tp.eval, **b.eval)
        if folder.exists():  # an incomplete copy (files deleted by hand): replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.rename(tmp, folder)  # atomic; fails when another process finished first
        except OSError:
            if not all(f.exists() for f in paths_in(folder).__dict__.values()):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in root.glob(f"{name}-*"):  # copies built by earlier versions of the builder
        if old != folder and old.is_dir() and old.name[len(name) + 1:].isalnum():
            shutil.rmtree(old, ignore_errors=True)
    return p
