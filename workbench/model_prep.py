"""Make a loaded ModelProto safe to quantize and analyse, and say what was changed.

Steps, each reported to the user as a note: give every node a unique name (exclusions and overrides
are keyed by node name), move weights held in ``Constant`` nodes into initializers (onnxruntime's
quantizer only quantizes initializers and silently leaves such weights in float), validate with
onnx's checker, run onnxruntime's quantization pre-processing when the graph has patterns it fixes
(unfolded BatchNormalization, missing shapes), and infer shapes so every tensor has a dtype.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_capi
from onnxruntime.quantization.shape_inference import quant_pre_process

from analyzers.onnx_utils import opset_of

from .errors import ModelLoadError
from .graph import ModelGraph, build_graph
from .model_loader import load_model
from .paths import cache_dir, scratch_dir, sha256_bytes, sha256_file, working_directory

_TWO_GB = 2**31 - 2**24


@dataclass
class PreparedModel:
    """A model ready for calibration, quantization and analysis, stored as a file in the cache."""

    source: str  # what the user opened (path or factory spec)
    path: Path  # the prepared FP32 ONNX file every later step reads
    graph: ModelGraph
    sha256: str  # content hash of the prepared model: keys every cache derived from it
    notes: list[str] = field(default_factory=list)
    size_bytes: int = 0
    opset: int = 0  # the default-domain opset (per-channel quantization needs 13)

    @property
    def name(self) -> str:
        return Path(self.source).stem if ":" not in self.source else self.source.split(":")[-1]

    def load_proto(self) -> onnx.ModelProto:
        return onnx.load(str(self.path))


def assign_node_names(model: onnx.ModelProto) -> int:
    """Name unnamed nodes and de-duplicate names; returns how many nodes were renamed."""
    seen: set[str] = set()
    renamed = 0
    for i, node in enumerate(model.graph.node):
        name = node.name
        if not name or name in seen:
            base = name or f"{node.op_type}_{i}"
            candidate, k = base, 1
            while candidate in seen:
                candidate = f"{base}_{k}"
                k += 1
            node.name = candidate
            renamed += 1
        seen.add(node.name)
    return renamed


def constants_to_initializers(model: onnx.ModelProto) -> list[str]:
    """Replace ``Constant`` nodes holding float tensors by initializers; returns the tensor names moved.

    onnxruntime's quantizer only treats initializers as weights, so a Conv whose weight comes from a
    Constant node would keep a float weight and a huge file without any warning.
    """
    g = model.graph
    keep, moved = [], []
    for node in g.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            arr = numpy_helper.to_array(node.attribute[0].t)
            g.initializer.append(numpy_helper.from_array(arr, node.output[0]))
            if arr.dtype.kind == "f" and arr.size > 1:
                moved.append(node.output[0])
            continue
        keep.append(node)
    if len(keep) != len(g.node):
        del g.node[:]
        g.node.extend(keep)
    return moved


def _needs_ort_preprocess(model: onnx.ModelProto) -> str | None:
    """Why onnxruntime's pre-processing would help this model, or None when it would not."""
    ops = {n.op_type for n in model.graph.node}
    if "BatchNormalization" in ops:
        return "it has BatchNormalization nodes that can be folded into the preceding Conv/Gemm"
    return None


def _ort_preprocess(model: onnx.ModelProto) -> onnx.ModelProto:

    with tempfile.TemporaryDirectory(prefix="qwb-prep-", dir=scratch_dir()) as td, working_directory(Path(td)):
        src, dst = Path(td) / "in.onnx", Path(td) / "out.onnx"
        onnx.save(model, str(src))
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        return onnx.load(str(dst))


def _runtime_ops() -> frozenset[tuple[str, str]] | None:
    """(domain, op type) of every operator onnxruntime has a kernel schema for; None when this build cannot say."""
    get = getattr(ort_capi, "get_all_operator_schema", None)
    if get is None:
        return None
    return frozenset((s.domain if s.domain != "ai.onnx" else "", s.name) for s in get())


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for a in node.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                yield from _nodes(g)


def _check_runtime_support(model: onnx.ModelProto, source: str) -> None:
    """Refuse, before anything runs, what onnxruntime cannot load: an opset newer than the installed onnx knows
    (it would fail deep inside calibration) and operators from domains it has no kernels for."""
    newest = onnx.defs.onnx_opset_version()
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version > newest:
            raise ModelLoadError(f"{source} declares ONNX opset {imp.version}; the installed onnx and onnxruntime "
                                 f"support up to opset {newest}",
                                 f"re-export the model with opset {newest} or lower (e.g. opset_version=17)")
    known = _runtime_ops()
    if known is None:
        return
    local = {(f.domain, f.name) for f in model.functions}  # model-local functions: onnxruntime inlines them
    missing = sorted({(n.domain if n.domain != "ai.onnx" else "", n.op_type) for n in _nodes(model.graph)}
                     - known - local)
    if missing:
        shown = ", ".join(f"{d}:{op}" if d else op for d, op in missing[:5])
        raise ModelLoadError(f"{source} uses operator(s) onnxruntime cannot run: {shown}"
                             + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""),
                             "re-export the model with standard ONNX operators (custom-op libraries are not loaded)")


def _check_and_infer(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0][:300]
        raise ModelLoadError(f"{source} is not a valid ONNX model: {first}",
                             "re-export the model; onnx.checker.check_model must pass") from e
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{source}: ONNX shape inference failed: {str(e)[:300]}",
                             "re-export the model with static or named input shapes") from e


def prepare_model(spec: str | Path, *, preprocess: str = "auto", example_input=None,
                  op_types_to_quantize: frozenset[str] | None = None, trust_code: bool = False) -> PreparedModel:
    """Load and prepare ``spec``; the result is cached by content so reopening is cheap.

    ``preprocess``: "auto" runs onnxruntime's quantization pre-processing only when it helps,
    "always" and "never" force it. ``trust_code``: see ``model_loader.load_model``.
    """
    model, notes = load_model(spec, example_input=example_input, trust_code=trust_code)
    source = str(spec)
    if model.ir_version < 3:
        raise ModelLoadError(f"{source} uses ONNX IR version {model.ir_version}", "re-export with a newer exporter")
    renamed = assign_node_names(model)
    if renamed:
        notes.append(f"named {renamed} unnamed or duplicate-named nodes (layer overrides are keyed by node name)")
    moved = constants_to_initializers(model)
    if moved:
        shown = ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")
        notes.append(f"moved {len(moved)} weight tensors held in Constant nodes into initializers so they get "
                     f"quantized ({shown})")
    _check_runtime_support(model, source)
    model = _check_and_infer(model, source)
    reason = _needs_ort_preprocess(model) if preprocess == "auto" else ("asked for" if preprocess == "always" else None)
    if reason:
        try:
            model = _ort_preprocess(model)
            assign_node_names(model)
            notes.append(f"ran onnxruntime's quantization pre-processing because {reason}")
            model = _check_and_infer(model, source)
        except Exception as e:  # noqa: BLE001 - pre-processing is an optimisation; keep the model as loaded
            notes.append(f"onnxruntime's quantization pre-processing failed ({type(e).__name__}); "
                         "continuing with the model as loaded")
    return _store(model, source, notes, op_types_to_quantize)


def _store(model: onnx.ModelProto, source: str, notes: list[str], op_types) -> PreparedModel:
    size = model.ByteSize()
    large = size > _TWO_GB
    if large:
        # serialize without the weights for hashing: hashing a >2 GB proto is not possible in one piece
        digest = sha256_bytes(source.encode(), str(size).encode())
    else:
        data = model.SerializeToString(deterministic=True)
        digest = sha256_bytes(data)
    folder = cache_dir() / "models" / digest[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    damage = _cache_damage(path) if path.exists() else "missing"
    if damage:
        if damage not in ("missing", "unstamped"):
            notes.append(f"the cached prepared model {path} was damaged ({damage}); rebuilt it")
        tmp = folder / "model.onnx.tmp"
        if large:
            onnx.save(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                      location="model.onnx.data")
        else:  # the bytes just hashed: serialized once, and the file's hash is the digest
            tmp.write_bytes(data)
        tmp.replace(path)
        _stamp(path, None if large else digest)
    graph = build_graph(model, op_types_to_quantize=op_types)
    return PreparedModel(source=source, path=path, graph=graph, sha256=digest, notes=notes, size_bytes=size,
                         opset=opset_of(model))


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".stamp.json")


def _fingerprint(path: Path, sha256: str | None = None) -> dict:
    """Size and hash of the cached model file (``sha256``: already known), and the size of its external data file
    when it has one."""
    data = path.with_name(path.name + ".data")
    return {"size": path.stat().st_size, "sha256": sha256 or sha256_file(path),
            "data_size": data.stat().st_size if data.exists() else None}


def _stamp(path: Path, sha256: str | None = None) -> None:
    """Record what the cached file must look like, so a truncated or altered copy is noticed on the next run."""
    tmp = path.with_name(path.name + ".stamp.tmp")
    tmp.write_text(json.dumps(_fingerprint(path, sha256)), encoding="utf-8")
    tmp.replace(_stamp_path(path))


def _cache_damage(path: Path) -> str | None:
    """Why the cached prepared model cannot be trusted (None when it matches its stamp); "unstamped" for a cache
    written before stamps existed (rewritten quietly)."""
    try:
        want = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "unstamped"
    except (OSError, ValueError):
        return "its stamp is unreadable"
    if not isinstance(want, dict):
        return "its stamp is unreadable"
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):  # a link to /dev/zero or a FIFO would make hashing it hang
        return "it is not a regular file"
    if want.get("size") != st.st_size:
        return f"{st.st_size:,} bytes where {want.get('size')} were written"
    have = _fingerprint(path)
    if want.get("sha256") != have["sha256"]:
        return "its content hash changed"
    if want.get("data_size") != have["data_size"]:
        return "its external data file changed size"
    return None
