"""``qwb export-overlay``: an analysis drawn on the graph in Model Explorer (per-node SQNR files)."""

from __future__ import annotations

import argparse
from pathlib import Path

import resources
from analyzers.diff_types import AnalysisResult
from analyzers.jsonsafe import loads_bounded

from ..errors import WorkbenchError
from ..overlays import export_model_explorer, overlays
from .common import add_force_arg, check_paths


def register(sub) -> None:
    p = sub.add_parser("export-overlay", help="write per-node SQNR overlays for Model Explorer",
                       description="Turn a `qwb analyze --json` (or `qwb report`) JSON file into Model Explorer "
                       "node-data files: cumulative SQNR, isolated SQNR, the isolated effective SQNR (min(tensor, channel mean)) and (deployed kernels) the kernel gap per "
                       "layer, coloured in "
                       "absolute dB bands. View: model-explorer MODEL --node_data_paths=DIR/cumulative_sqnr.json,...")
    p.add_argument("model", nargs="?", help="the ONNX model the analysis was made for")
    p.add_argument("--from", dest="source", required=True, metavar="JSON",
                   help="analysis JSON from `qwb analyze --json`, or a report's .json")
    p.add_argument("--format", choices=["model-explorer"], default="model-explorer", help="overlay format")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write the files into")
    p.add_argument("--demo", action="store_true", help="the bundled demo model")
    add_force_arg(p)
    p.set_defaults(func=run)


def _analysis(path: Path) -> AnalysisResult:
    try:
        doc = loads_bounded(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, or nested too deeply
        raise WorkbenchError(f"cannot read {path} as JSON ({type(e).__name__})",
                             "pass the file `qwb analyze --json OUT` or `qwb report` wrote") from e
    if isinstance(doc, dict) and doc.get("kind") == "qwb-report":  # a report: its final run's analysis
        runs = doc.get("runs") if isinstance(doc.get("runs"), list) else []
        final = doc.get("final_run", len(runs) - 1)
        run = runs[final] if isinstance(final, int) and not isinstance(final, bool) and 0 <= final < len(runs) else None
        doc = run.get("analysis") if isinstance(run, dict) else None
    if not isinstance(doc, dict) or "layers" not in doc:
        raise WorkbenchError(f"{path} holds no analysis (no 'layers')",
                             "pass the file `qwb analyze --json OUT` or `qwb report` wrote")
    try:
        return AnalysisResult.from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise WorkbenchError(f"{path}: the analysis cannot be read ({type(e).__name__}: {e})",
                             "write it again with this version: qwb analyze ... --json OUT") from e


def run(args: argparse.Namespace) -> int:
    model = str(resources.DEMO_MODEL) if args.demo and args.model is None else args.model
    if not model:
        raise WorkbenchError("no model given", "pass the ONNX model the analysis was made for (or --demo)")
    args.model = model
    check_paths(args, [args.output])
    analysis = _analysis(Path(args.source))
    check_paths(args, [Path(args.output) / o.file for o in overlays(analysis)])
    files, missing = export_model_explorer(model, analysis, args.output)
    for f in files:
        print(f"wrote    {f}")
    if missing:
        print(f"note: {missing} analysed layer(s) are not named in {model}; their values show nowhere")
    print(f"view     model-explorer {model} --node_data_paths={','.join(str(f) for f in files)}")
    return 0
