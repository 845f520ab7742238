"""Model summary, environment and data-set descriptions for a report (what was quantized, where, on what).

Strings read from the model file are kept as they are (escaping is the renderers' job) but bounded in
length, so a model with a multi-megabyte doc string cannot make a multi-megabyte report.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

import onnx
import onnxruntime as ort

from .. import __version__
from .data import DataSet, Environment, ModelSummary, TensorInfoRow

MAX_TEXT = 4000  # characters kept of a doc string
MAX_META_VALUE = 1000
MAX_META_ITEMS = 50
PACKAGES = ("quant-workbench", "onnxruntime", "onnx", "numpy", "torch")


def clip_text(s: str, limit: int) -> str:
    """``s`` cut to ``limit`` characters, saying how much was left out."""
    s = str(s or "")
    return s if len(s) <= limit else s[:limit] + f" … ({len(s) - limit} more characters)"


def model_summary(prepared) -> ModelSummary:
    """Summarise a ``PreparedModel``: its graph, sizes, and the descriptive fields of the model file."""
    g = prepared.graph
    proto = onnx.load(str(prepared.path), load_external_data=False)
    params = 0
    for init in proto.graph.initializer:
        if init.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16,
                              onnx.TensorProto.DOUBLE):
            n = 1
            for d in init.dims:
                n *= int(d)
            params += n
    src = Path(prepared.source)
    file_bytes = src.stat().st_size if src.is_file() else None
    meta = {}
    for p in list(proto.metadata_props)[:MAX_META_ITEMS]:
        meta[clip_text(p.key, 200)] = clip_text(p.value, MAX_META_VALUE)
    notes = list(prepared.notes)
    if len(proto.metadata_props) > MAX_META_ITEMS:
        notes.append(f"{len(proto.metadata_props) - MAX_META_ITEMS} more metadata entries not shown")
    return ModelSummary(
        source=prepared.source, name=prepared.name, sha256=prepared.sha256, file_bytes=file_bytes,
        prepared_bytes=int(prepared.size_bytes), parameters=params, nodes=len(g.nodes),
        quantizable=len(g.quantizable_nodes()), ir_version=int(proto.ir_version),
        opsets={(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import},
        inputs=[_row(t) for t in g.inputs], outputs=[_row(t) for t in g.outputs], op_types=g.op_type_counts(),
        producer=clip_text(proto.producer_name, 200), producer_version=clip_text(proto.producer_version, 200),
        domain=clip_text(proto.domain, 200), model_version=int(proto.model_version),
        graph_name=clip_text(proto.graph.name, 200), doc_string=clip_text(proto.doc_string, MAX_TEXT),
        graph_doc_string=clip_text(proto.graph.doc_string, MAX_TEXT), metadata=meta, notes=notes)


def _row(t) -> TensorInfoRow:
    return TensorInfoRow(t.name, list(t.shape) if t.shape is not None else None, t.dtype)


def cpu_name() -> str:
    """The CPU model as the OS reports it (Linux /proc/cpuinfo, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed versions of the packages the numbers depend on (missing ones are left out)."""
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            if n == "quant-workbench":

                out[n] = __version__
    return out


def environment(execution: str) -> Environment:
    """This machine and software, as a report records them."""

    return Environment(python=sys.version.split()[0], platform=platform.platform(), cpu=cpu_name(),
                       cores_logical=os.cpu_count(), packages=package_versions(),
                       providers=list(ort.get_available_providers()), execution=execution)


def execution_text(mode: str) -> str:
    """A sentence for how the analysis ran INT8 (``AnalysisResult.execution``)."""
    if mode == "simulated":
        return ("onnxruntime CPUExecutionProvider; INT8 simulated exactly with QuantizeLinear/DequantizeLinear, "
                "graph optimizations off (as onnxruntime's qdq_loss_debug)")
    return f"onnxruntime CPUExecutionProvider ({mode})"


def data_sets(session) -> list[DataSet]:
    """The calibration and evaluation data of a session (one entry when they are the same)."""
    out = [DataSet("calibration", session.calib_data.description, len(session.calib_data),
                   session.calib_data.labels is not None, session.calib_data.content_hash())]
    if session.eval_data is not session.calib_data:
        out.append(DataSet("evaluation", session.eval_data.description, len(session.eval_data),
                           session.eval_data.labels is not None, session.eval_data.content_hash()))
    return out
