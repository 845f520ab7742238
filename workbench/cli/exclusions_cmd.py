"""``qwb export-exclusions``: a recipe's FP32/INT16 layers in onnxruntime, Polygraphy, NNCF and TFLite forms."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import resources

from ..errors import WorkbenchError
from ..model_prep import prepare_model
from ..recipe import Recipe
from ..report.exclusions import EXTENSIONS, FORMATS, build_exclusions
from ..safe_paths import write_text
from .common import add_force_arg, add_trust_arg, check_paths

FORMAT_CHOICES = ("ort", "polygraphy", "nncf", "tflite", "all")


def register(sub) -> None:
    p = sub.add_parser("export-exclusions", help="write a recipe's float/16-bit layers for other toolchains",
                       description="Write the layers a recipe keeps in float (fp32) or at 16 bits (int16) in the "
                       "forms other tools take: ort (onnxruntime nodes_to_exclude + TensorQuantOverrides, JSON), "
                       "polygraphy (--layer-precisions arguments), nncf (an IgnoredScope snippet), tflite "
                       "(QuantizationDebugOptions denylisted_nodes snippet). No data is needed.")
    p.add_argument("model", nargs="?", help="the model the recipe is for (ONNX, or as `qwb quantize` takes it)")
    p.add_argument("--recipe", metavar="R", help="recipe TOML whose [layers] set precision = \"fp32\" or \"int16\"")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="all",
                   help="which form (default: all; with -o, all needs a folder)")
    p.add_argument("-o", "--output", metavar="OUT", help="file to write (a folder with --format all); "
                   "default: print to standard output")
    p.add_argument("--demo", action="store_true", help="use the bundled demo model")
    p.add_argument("--preprocess", choices=["auto", "always", "never"], default="auto",
                   help="onnxruntime quantization pre-processing, as for qwb quantize (node names can change)")
    add_trust_arg(p)
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    if args.demo and args.model is None:

        args.model = str(resources.DEMO_MODEL)
    if not args.model:
        raise WorkbenchError("no model given", "pass the model the recipe is for (or --demo)")
    if not args.recipe:
        raise WorkbenchError("no recipe given: the layers to export come from a recipe",
                             "pass --recipe R (a TOML with [layers.\"name\"] precision = \"fp32\" or \"int16\")")
    check_paths(args, [args.output])
    recipe = Recipe.load(args.recipe)
    prepared = prepare_model(args.model, preprocess=args.preprocess, trust_code=args.trust_model_code)
    recipe.validate(prepared.graph.node_names)
    ex = build_exclusions(prepared, recipe, Path(args.recipe).name)
    fmts = list(FORMATS) if args.format == "all" else [args.format]
    if not ex.layers:
        print(f"note: {args.recipe} keeps every layer in INT8; the forms list no layer", file=sys.stderr)
    for n in ex.notes:
        print(f"note: {n}", file=sys.stderr)
    if args.output is None:
        for f in fmts:
            if len(fmts) > 1:
                print(f"=== {f} ===")
            sys.stdout.write(ex.formats[f])
        return 0
    out = Path(args.output)
    if len(fmts) > 1:
        if out.exists() and not out.is_dir():
            raise WorkbenchError(f"--format all writes four files, and {out} is a file", "pass a folder to -o")
        out.mkdir(parents=True, exist_ok=True)
        targets = {f: out / f"{prepared.name}{EXTENSIONS[f]}" for f in fmts}
    else:
        if out.is_dir():
            out = out / f"{prepared.name}{EXTENSIONS[fmts[0]]}"
        targets = {fmts[0]: out}
    check_paths(args, targets.values())
    for f, path in targets.items():
        write_text(path, ex.formats[f])
        print(f"wrote    {path}  ({f})")
    return 0
