"""Calibration and evaluation data: .npz, .npy, image folders, and (only on request) synthetic data.

Every source yields *samples*: a dict mapping each model input name to an array shaped exactly as the
model takes it for one sample. Sources are validated against the model's inputs up front so a mismatch
is one clear message naming the file and the input, not an onnxruntime error half way through a run.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
import zipfile
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from .errors import DataError
from .graph import TensorInfo
from .npz_rows import NpzRows
from .paths import sha256_file
from .recipe import PreprocessSpec
from .safe_paths import IMAGE_SUFFIXES, check_input

LABELS_KEY = "labels"
MAX_SYNTHETIC_BYTES = 2 << 30  # synthetic:N is held in memory: refuse an N that would not fit


@dataclass(frozen=True)
class InputLayout:
    """How the arrays in a data file map onto one model input."""

    name: str
    model_shape: tuple
    dtype: np.dtype
    has_batch_axis: bool  # the model's first dim is a batch axis (fixed 1 or symbolic)
    dynamic_batch: bool  # the model accepts any batch size: samples can be run together


def input_layouts(inputs: list[TensorInfo]) -> dict[str, InputLayout]:
    """Decide, per model input, whether dim 0 is a batch axis and whether it is dynamic."""
    out = {}
    for t in inputs:
        shape = tuple(t.shape) if t.shape is not None else ()
        first = shape[0] if shape else None
        dynamic = bool(shape) and not isinstance(first, int)
        has_batch = bool(shape) and (dynamic or first == 1)
        out[t.name] = InputLayout(t.name, shape, np.dtype(t.dtype), has_batch, dynamic)
    return out


class DataSource(ABC):
    """A sequence of samples for the model plus optional integer class labels."""

    description: str = ""
    warning: str | None = None  # shown loudly to the user (synthetic data)
    path: str | None = None

    def __init__(self) -> None:
        self.layouts: dict[str, InputLayout] = {}

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _raw(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of input ``name`` with the sample axis first."""

    @abstractmethod
    def input_names(self) -> list[str]: ...

    @abstractmethod
    def content_hash(self) -> str:
        """Identifies the data's content, for caches derived from it."""

    labels: np.ndarray | None = None

    # -- binding to a model ------------------------------------------------------------------
    def bind(self, inputs: list[TensorInfo]) -> "DataSource":
        """Check this data against the model's inputs; raise DataError naming the first problem."""
        if len(self) == 0:
            raise DataError(f"{self.description} holds no samples", "pass a file with at least one sample")
        layouts = input_layouts(inputs)
        expected, given = list(layouts), self.input_names()
        missing = [n for n in expected if n not in given]
        if missing:
            raise DataError(
                f"{self.description} has no array for model input(s) {missing} (it has {given})",
                "save one array per model input, keyed by input name: np.savez(path, "
                + ", ".join(f"{_py_ident(n)}=..." for n in expected) + ")")
        extra = [n for n in given if n not in layouts]
        if extra:
            raise DataError(f"{self.description} has arrays {extra} that are not model inputs "
                            f"(the model's inputs are {expected})",
                            f"rename them to the model's input names, or store class labels under '{LABELS_KEY}'")
        for name, lay in layouts.items():
            arr = self._raw(name, 0, 1)
            self._check_one(name, lay, arr)
        if self.labels is not None and len(self.labels) != len(self):
            raise DataError(f"{self.description}: '{LABELS_KEY}' has {len(self.labels)} entries for "
                            f"{len(self)} samples", "give exactly one integer label per sample")
        self.layouts = layouts
        return self

    def _check_one(self, name: str, lay: InputLayout, first_row: np.ndarray) -> None:
        if first_row.dtype != lay.dtype:
            raise DataError(f"{self.description}: input '{name}' is {first_row.dtype} but the model expects "
                            f"{lay.dtype}", f"convert it, e.g. arr.astype(np.{lay.dtype.name})")
        sample_shape = self._sample_shape(lay, first_row.shape)
        model = lay.model_shape
        if len(sample_shape) != len(model):
            seen = (f"; each sample is fed as a batch of one, {tuple(sample_shape)}" if lay.has_batch_axis else "")
            raise DataError(
                f"{self.description}: input '{name}' has samples of shape {tuple(first_row.shape[1:])}{seen}, "
                f"but the model expects {_fmt_shape(model)}",
                "put the sample axis first: shape (num_samples, " + ", ".join(str(d) for d in model[1:]) + ")"
                if lay.has_batch_axis else "put the sample axis first")
        for i, (got, want) in enumerate(zip(sample_shape, model)):
            if isinstance(want, int) and got != want and not (i == 0 and lay.has_batch_axis):
                raise DataError(f"{self.description}: input '{name}' has samples of shape {sample_shape} but "
                                f"the model expects {_fmt_shape(model)} (dimension {i}: {got} vs {want})",
                                "resize or re-export the data to the model's input shape")

    @staticmethod
    def _sample_shape(lay: InputLayout, row_shape: tuple) -> tuple:
        # rows are stored with the sample axis first; a model with a batch axis sees (1, *row[1:])
        if lay.has_batch_axis:
            return (1,) + tuple(row_shape[1:])
        return tuple(row_shape[1:])

    # -- iteration ---------------------------------------------------------------------------
    @property
    def can_batch(self) -> bool:
        """Whether several samples can be run as one batch (every input has a dynamic batch axis)."""
        return bool(self.layouts) and all(lay.dynamic_batch for lay in self.layouts.values())

    def sample(self, i: int) -> dict[str, np.ndarray]:
        return self.batch(i, i + 1)

    def batch(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Samples ``start:stop`` as one feed; only valid for more than one sample when ``can_batch``."""
        if not self.layouts:
            raise RuntimeError("bind() the data source to a model before reading samples")
        feed = {}
        for name, lay in self.layouts.items():
            arr = self._raw(name, start, stop)
            feed[name] = np.ascontiguousarray(arr if lay.has_batch_axis else arr[0])
        return feed

    def batches(self, limit: int | None = None, batch_size: int = 32) -> Iterator[tuple[int, int, dict]]:
        """Yield (start, stop, feed) over the first ``limit`` samples, batched when the model allows it."""
        n = len(self) if limit is None else min(limit, len(self))
        step = batch_size if self.can_batch else 1
        for start in range(0, n, step):
            stop = min(n, start + step)
            yield start, stop, self.batch(start, stop)

    def input_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of input ``name`` alone (sample axis first), to scan one input without the others."""
        return self._raw(name, start, stop)

    def first_sample(self) -> dict[str, np.ndarray]:
        """The first sample as arrays with a leading batch axis (for exporting PyTorch models)."""
        return {n: np.ascontiguousarray(self._raw(n, 0, 1)) for n in self.input_names()}


class ArraySource(DataSource):
    """Samples held in memory as arrays keyed by input name (what .npz and .npy files become)."""

    def __init__(self, arrays: dict[str, np.ndarray], labels: np.ndarray | None, description: str,
                 digest: str, path: str | None = None):
        super().__init__()
        self.arrays = arrays
        self.labels = labels
        self.description = description
        self._digest = digest
        self.path = path
        lengths = {n: len(a) for n, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{description}: inputs have different numbers of samples {lengths}",
                            "give every input the same number of samples along axis 0")
        for n, a in arrays.items():
            if a.ndim == 0:
                raise DataError(f"{description}: input '{n}' is a scalar", "put the sample axis first")

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def _raw(self, name: str, start: int, stop: int) -> np.ndarray:
        return self.arrays[name][start:stop]

    def input_names(self) -> list[str]:
        return list(self.arrays)

    def content_hash(self) -> str:
        return self._digest

    def subset(self, n: int) -> "ArraySource":
        """The first ``n`` samples (for ``--samples``)."""
        src = ArraySource({k: v[:n] for k, v in self.arrays.items()},
                          None if self.labels is None else self.labels[:n],
                          self.description, hashlib.sha256(f"{self._digest}:{n}".encode()).hexdigest(), self.path)
        src.layouts = self.layouts
        return src


class ImageFolderSource(DataSource):
    """A folder of images (optionally one sub-folder per class) turned into model input by a PreprocessSpec."""

    def __init__(self, folder: Path, spec: PreprocessSpec):
        super().__init__()
        self.folder = folder
        self.spec = spec
        self.path = str(folder)
        self.description = f"image folder {folder}"
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        files: list[Path] = []
        labels: list[int] = []
        if subdirs:
            self.classes = [d.name for d in subdirs]
            for k, d in enumerate(subdirs):
                imgs = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
                files += imgs
                labels += [k] * len(imgs)
        else:
            self.classes = []
        files += sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.files = files
        self.labels = np.array(labels, dtype=np.int64) if subdirs and len(labels) == len(files) else None
        self._input_name: str | None = None

    def __len__(self) -> int:
        return len(self.files)

    def input_names(self) -> list[str]:
        return [self._input_name] if self._input_name else ["<image>"]

    def bind(self, inputs: list[TensorInfo]) -> "DataSource":
        if len(inputs) != 1:
            raise DataError(f"{self.description}: image folders feed single-input models, this model has "
                            f"{len(inputs)} inputs ({[t.name for t in inputs]})", "use an .npz file with one "
                            "array per input")
        self._input_name = inputs[0].name
        return super().bind(inputs)

    def _raw(self, name: str, start: int, stop: int) -> np.ndarray:
        return np.stack([self._load(self.files[i]) for i in range(start, stop)])

    def _load(self, path: Path) -> np.ndarray:

        s = self.spec
        try:
            img = Image.open(path)
            img = img.convert("L" if s.grayscale else "RGB")
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path} could not be read as an image ({e})", "remove or replace the file") from e
        if s.resize:
            w, h = img.size
            k = s.resize / min(w, h)
            img = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.BILINEAR)
        if s.center_crop:
            w, h = img.size
            c = s.center_crop
            left, top = (w - c) // 2, (h - c) // 2
            img = img.crop((left, top, left + c, top + c))
        x = np.asarray(img, dtype=np.float32) * np.float32(s.scale)
        if x.ndim == 2:
            x = x[..., None]
        if not s.grayscale and s.channel_order == "BGR":
            x = x[..., ::-1]
        mean = np.asarray(s.mean[: x.shape[-1]], dtype=np.float32)
        std = np.asarray(s.std[: x.shape[-1]], dtype=np.float32)
        x = (x - mean) / std
        if s.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x, dtype=np.float32)

    def content_hash(self) -> str:
        h = hashlib.sha256(repr(self.spec).encode())
        for p in self.files:
            st = p.stat()
            h.update(f"{p.relative_to(self.folder)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()


class SyntheticSource(ArraySource):
    """Random normal data: only for smoke tests of a pipeline, never for real calibration."""

    def __init__(self, inputs: list[TensorInfo], n: int, seed: int = 0):
        need = n * sum(np.dtype(t.dtype).itemsize * math.prod(d if isinstance(d, int) and d > 0 else 1
                                                             for d in (t.shape or ())[1:]) for t in inputs)
        if need > MAX_SYNTHETIC_BYTES:
            most = max(1, n * MAX_SYNTHETIC_BYTES // need)
            raise DataError(f"synthetic:{n} would need {need / 2**30:,.1f} GiB of memory (at most "
                            f"{MAX_SYNTHETIC_BYTES >> 30} GiB is generated)",
                            f"use synthetic:N with N <= {most}, or real samples (--calib file.npz)")
        rng = np.random.default_rng(seed)
        arrays = {}
        for t in inputs:
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in (t.shape or ())]
            lay = input_layouts([t])[t.name]
            rows = shape if lay.has_batch_axis else [1] + shape
            rows[0] = n if lay.has_batch_axis else n
            dtype = np.dtype(t.dtype)
            if dtype.kind == "f":  # float32 drawn directly: no float64 array twice the size
                arr = rng.standard_normal(rows, dtype=np.float32).astype(dtype, copy=False)
            elif dtype.kind == "b":
                arr = rng.integers(0, 2, rows).astype(dtype)
            else:
                arr = rng.integers(0, 10, rows).astype(dtype)
            if not lay.has_batch_axis:
                arr = arr.reshape([n] + shape)
            arrays[t.name] = arr
        digest = hashlib.sha256(f"synthetic:{n}:{seed}:{[(t.name, t.shape) for t in inputs]}".encode()).hexdigest()
        super().__init__(arrays, None, f"synthetic random data ({n} samples)", digest, f"synthetic:{n}")
        self.warning = ("SYNTHETIC RANDOM DATA: calibration ranges and every accuracy figure computed from it "
                        "are meaningless for real inputs. Use real samples (--calib file.npz) for anything "
                        "you will act on.")


_SYNTH_RE = re.compile(r"^synthetic(?::(\d+))?$")


def open_data(spec: str | Path, inputs: list[TensorInfo], preprocess: PreprocessSpec | None = None,
              role: str = "calibration") -> DataSource:
    """Open ``spec`` (.npz, .npy, image folder, or ``synthetic[:N]``) and validate it against ``inputs``."""
    s = str(spec)
    m = _SYNTH_RE.match(s)
    if m:
        src: DataSource = SyntheticSource(inputs, int(m.group(1) or 32))
        print(f"WARNING: {role} data: {src.warning}", file=sys.stderr)
        return src.bind(inputs)
    path = Path(s)
    if not path.exists():
        raise DataError(f"{role} data not found: {path}",
                        "pass an .npz (one array per input name), an .npy (single-input models), an image "
                        "folder, or synthetic:N")
    check_input(path, f"{role} data")
    if path.is_dir():
        src = ImageFolderSource(path, preprocess or PreprocessSpec())
        if len(src) == 0:
            raise DataError(f"{role} data folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                            "point at a folder of images, or at an .npz file")
        return src.bind(inputs)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _open_npz(path, role).bind(inputs)
    if suffix == ".npy":
        if len(inputs) != 1:
            raise DataError(f"{path}: a .npy file holds one array but the model has {len(inputs)} inputs "
                            f"({[t.name for t in inputs]})", "use an .npz with one array per input name")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path} is not a readable .npy file ({e})", "save it with np.save") from e
        return ArraySource({inputs[0].name: arr}, None, f"{role} data {path}", sha256_file(path), str(path)).bind(inputs)
    raise DataError(f"{role} data {path} has an unknown type '{suffix}'",
                    "use .npz, .npy, a folder of images, or synthetic:N")


class NpzSource(DataSource):
    """An .npz file read a batch at a time (see ``npz_rows``): memory does not grow with its length."""

    def __init__(self, path: Path, role: str):
        super().__init__()

        self.path = str(path)
        self.description = f"{role} data {path}"
        try:
            self.rows = NpzRows(path)
        except Exception as e:  # noqa: BLE001 - zipfile/numpy raise many kinds for a damaged file
            raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}: {e})",
                            "save it with np.savez(path, input_name=array, labels=...)") from e
        labels = self.rows.read(LABELS_KEY) if LABELS_KEY in self.rows.members else None
        if labels is not None and (labels.ndim not in (1, 2) or labels.dtype.kind not in "iu"):
            raise DataError(f"{path}: '{LABELS_KEY}' must be integer class indices of shape (N,) or label sequences "
                            f"of shape (N, L) padded with -1, got {labels.dtype} {labels.shape}",
                            "store labels as np.int64 of shape (N,), or (N, L) for sequence outputs")
        self.labels = labels
        self._names = [k for k in self.rows.keys() if k != LABELS_KEY]
        if not self._names:
            raise DataError(f"{path} holds no input arrays", "save one array per model input name")
        lengths = {n: len(self.rows.members[n]) for n in self._names}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{self.description}: inputs have different numbers of samples {lengths}",
                            "give every input the same number of samples along axis 0")
        for n in self._names:
            if not self.rows.members[n].shape:
                raise DataError(f"{self.description}: input '{n}' is a scalar", "put the sample axis first")
        self._digest = sha256_file(path)

    def __len__(self) -> int:
        return len(self.rows.members[self._names[0]])

    def _raw(self, name: str, start: int, stop: int) -> np.ndarray:
        try:
            return self.rows.rows(name, start, stop)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise DataError(f"{self.path} is damaged: {e}", "write the file again with np.savez") from e

    def input_names(self) -> list[str]:
        return list(self._names)

    def content_hash(self) -> str:
        return self._digest


def _open_npz(path: Path, role: str) -> NpzSource:
    return NpzSource(path, role)


def _fmt_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ")"


def _py_ident(name: str) -> str:
    return name if name.isidentifier() else f"**{{{name!r}: ...}}"
