"""Per-node overlays of an analysis for Google's Model Explorer: error drawn on the graph in a viewer users have.

Model Explorer's node data (``model_explorer.node_data_builder``) is one JSON file per metric:
``{graph id: {"name", "results": {node id: {"value": x}}, "thresholds": [{"value", "bgColor"}, ...]}}``. For
ONNX models the graph id is ``graph.name`` and node ids are node names, so a file written here colours the same
model file opened in Model Explorer (``model-explorer model.onnx --node_data_paths=a.json,b.json``). Netron has
no overlay support, which is why this targets Model Explorer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import onnx

from analyzers.diff_types import AnalysisResult

from .errors import WorkbenchError
from .formatting import EFFECTIVE_SQNR_DEF
from .safe_paths import write_text

# absolute SQNR bands (dB), the same reading as the GUI's colour scale: red is bad, green is good. Thresholds, not
# a gradient, so a colour means the same dB in every model (a gradient spans each file's own min..max)
SQNR_BANDS = ((10.0, "#d73027"), (20.0, "#fc8d59"), (30.0, "#fee08b"), (40.0, "#91cf60"), (1e9, "#1a9850"))
# kernel gap bands (dB lost by the deployed kernels against the exact simulation): green under 0.5 dB (rounding
# ties), red from 6 dB; 1 dB is where analyzers.deployed_layers flags a kernel
GAP_BANDS = ((0.5, "#1a9850"), (1.0, "#91cf60"), (3.0, "#fee08b"), (6.0, "#fc8d59"), (1e9, "#d73027"))


@dataclass
class Overlay:
    """One node-data file: its name on disk, the metric's label, and node -> value."""

    file: str
    label: str
    values: dict[str, float]
    bands: tuple = SQNR_BANDS


def overlays(result: AnalysisResult) -> list[Overlay]:
    """Cumulative and isolated SQNR per analysed layer, and the kernel gap where the deployed per-layer view
    measured one (finite values only: Model Explorer takes numbers)."""
    cum = {lay.node: lay.cumulative.sqnr_db for lay in result.layers}
    iso = {lay.node: lay.isolated.sqnr_db for lay in result.layers if lay.isolated is not None}
    key = {lay.node: lay.isolated.effective_sqnr_db for lay in result.layers if lay.isolated is not None}
    out = [Overlay("cumulative_sqnr.json", "Cumulative SQNR (dB)", cum),
           Overlay("isolated_sqnr.json", "Isolated SQNR (dB)", iso),
           Overlay("rank_key.json", f"Isolated {EFFECTIVE_SQNR_DEF} (dB)", key)]
    gap = {lay.node: lay.deployed.get("kernel_gap_db") for lay in result.layers if lay.deployed}
    if gap:
        out.append(Overlay("kernel_gap.json", "Kernel gap: exact minus deployed SQNR (dB, this CPU)", gap, GAP_BANDS))
    for o in out:
        o.values = {n: float(v) for n, v in o.values.items() if v is not None and math.isfinite(v)}
    return out


def node_data(graph_id: str, overlay: Overlay) -> dict:
    """The Model Explorer node-data document for one overlay."""
    return {graph_id: {"name": overlay.label,
                       "results": {node: {"value": v} for node, v in overlay.values.items()},
                       "thresholds": [{"value": v, "bgColor": c} for v, c in overlay.bands]}}


def export_model_explorer(model_path: str | Path, result: AnalysisResult, folder: str | Path) -> tuple[list[Path], int]:
    """Write one node-data file per overlay into ``folder``; returns the files and how many analysed layers the
    model file does not name (their values would show nowhere: e.g. nodes named by our preparation step)."""
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for a file that is not ONNX
        raise WorkbenchError(f"{model_path} is not an ONNX model ({type(e).__name__})",
                             "pass the .onnx file the analysis was made for") from e
    names = {n.name for n in model.graph.node if n.name}
    missing = sum(1 for lay in result.layers if lay.node not in names)
    if missing == len(result.layers):
        raise WorkbenchError(f"none of the {len(result.layers)} analysed layers is a node of {model_path}",
                             "pass the model the analysis was made for (for models with unnamed nodes, the "
                             "prepared model under the cache, whose path `qwb analyze --json` records)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for o in overlays(result):
        path = folder / o.file
        write_text(path, json.dumps(node_data(model.graph.name, o), indent=1, allow_nan=False) + "\n")
        written.append(path)
    return written, missing
