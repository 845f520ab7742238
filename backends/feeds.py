"""What the benchmark feeds a model: a pool of samples per input, cut to each batch size in the child.

Real samples (from calibration data) when the caller has them, so numerics comparisons mean something;
otherwise random inputs shaped from the model's declared inputs, which is fine for timing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import BackendError

_NP_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16",
             11: "float64"}


@dataclass
class Feed:
    """Sample pool: ``arrays[name]`` has the sample axis first where ``batch_axis[name]`` is True."""

    arrays: dict
    batch_axis: dict
    description: str = ""
    notes: list = field(default_factory=list)

    @property
    def can_batch(self) -> bool:
        """Every input has a variable batch axis, so any batch size can be cut from the pool."""
        return bool(self.batch_axis) and all(self.batch_axis.values())

    @property
    def pool_size(self) -> int:
        sizes = [a.shape[0] for n, a in self.arrays.items() if self.batch_axis.get(n)]
        return min(sizes) if sizes else 1

    def shapes(self, batch: int) -> dict[str, tuple]:
        """Input shapes at ``batch`` (for counting MACs)."""
        return {n: ((batch,) + tuple(a.shape[1:])) if self.batch_axis.get(n) else tuple(a.shape)
                for n, a in self.arrays.items()}

    def check_batch(self, batch: int) -> None:
        """Refuse, before any process starts, a batch size the model cannot take."""
        if batch != 1 and not self.can_batch:
            fixed = [n for n, b in self.batch_axis.items() if not b]
            raise BackendError(f"the model's input {fixed[0]!r} has no variable batch axis, so it can only run one "
                               f"sample at a time (asked for batch {batch})", "use --batch 1, or export the model "
                               "with a dynamic batch dimension")

    def save(self, path: Path) -> Path:
        import numpy as np  # noqa: PLC0415

        np.savez(path, **self.arrays)
        return path


def random_feed(model_path: str | Path, pool: int = 8, seed: int = 0) -> Feed:
    """Random inputs for the model's declared inputs; dim 0 symbolic or 1 is taken as the batch axis."""
    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415

    m = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    rng = np.random.default_rng(seed)
    arrays, batch_axis = {}, {}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        dynamic = bool(dims) and dims[0] is None
        unknown = [i for i, d in enumerate(dims) if d is None and i > 0]
        if unknown:
            raise BackendError(f"input {inp.name!r} of {model_path} has symbolic dimensions beyond the batch axis "
                               f"({dims}), so random inputs cannot be shaped for it",
                               "pass --calib DATA with real samples for this model")
        dtype = np.dtype(_NP_TYPES.get(tt.elem_type, "float32"))
        shape = [pool if dynamic else (dims[0] if dims else None)] + dims[1:] if dims else []
        shape = [d for d in shape if d is not None]
        if dtype.kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, shape).astype(dtype)
        else:
            arr = rng.integers(0, 10, shape).astype(dtype)
        arrays[inp.name] = arr
        batch_axis[inp.name] = dynamic
    return Feed(arrays, batch_axis, f"random inputs shaped from {Path(model_path).name}",
                ["inputs are random (no data given): timings are valid, output comparisons use random inputs"])
