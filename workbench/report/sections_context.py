"""The context sections of the HTML report: the fix for other toolchains, recipe, model, environment and
how to reproduce. Text from the model file (names, doc strings, metadata) is only ever passed as data
to ``markup.el``, which escapes it."""

from __future__ import annotations

import shlex

from ..formatting import fmt_bytes
from .exclusions import EXTENSIONS, FORMATS
from .html_parts import code_block, kv, precision_tag, section, shape_text, table, tag
from .markup import Markup, el, join
from .view import View

FORMAT_TITLES = {"ort": "onnxruntime (nodes_to_exclude + TensorQuantOverrides)",
                 "polygraphy": "Polygraphy / TensorRT layer precisions", "nncf": "NNCF IgnoredScope",
                 "tflite": "TFLite denylist (QuantizationDebugOptions)"}


def fix(v: View, f: int) -> Markup:
    """The layers kept out of INT8 by the final recipe, in each toolchain's form."""
    ex = v.get("runs", f, "exclusions")
    if not ex:
        return section("fix", "The fix for other toolchains", el("p", {"class_": "muted"}, "Not computed."))
    rows = [[el("code", None, lay["node"]), tag(lay["op_type"]), precision_tag(lay["precision"]),
             join([el("code", None, t) for t in lay["outputs"]], ", "),
             "" if lay["in_source"] else tag("name given by Quant Workbench", "bad")] for lay in ex["layers"]]
    if not rows:
        return section("fix", "The fix for other toolchains",
                       el("p", None, "This recipe keeps every layer in INT8: there is no fix to export. ",
                          _candidates(v, f)))
    src = v.get("runs", f, "recipe_source")
    cmd = v.get("reproduce", "fix_command") or " ".join(shlex.quote(a) for a in [
        "qwb", "export-exclusions", v.get("model", "source"), "--recipe", src or "recipe.toml", "--format", "all",
        "-o", "fix/"])
    blocks = []
    stem = v.get("model", "name")
    for fmt in FORMATS:
        text = ex["formats"].get(fmt)
        if text is None:
            continue
        blocks.append(el("div", {"id": f"fix-{fmt}", "class_": "fix-form"}, el("h3", None, FORMAT_TITLES[fmt]),
                         code_block(text, f"{stem}{EXTENSIONS[fmt]}", "download")))
    intro = table(["layer", "op", "precision", "output tensors", ""], rows, id="fix-layers")
    notes = [el("li", None, n) for n in ex["notes"]]
    return section("fix", "The fix for other toolchains",
                   el("p", {"class_": "sub"}, "Layers the recipe keeps in float (FP32) or at 16 bits (INT16), "
                      "written for the tools you may deploy with. Regenerate in this report's folder with ",
                      el("code", None, cmd), " (the recipe file is written beside the report)."),
                   intro, el("ul", None, *notes) if notes else None, el("div", {"class_": "grid2"}, *blocks))


def _candidates(v: View, f: int) -> Markup:
    flagged = [lay["node"] for lay in v.get("runs", f, "analysis", "layers") if lay["flagged"]]
    if not flagged:
        return Markup("")
    return join(["Flagged layers to try at INT16 or FP32 first: ", join([el("code", None, n) for n in flagged], ", "),
                 "."])


def recipe(v: View) -> Markup:
    """Each run's recipe: how it differs from the defaults, and its TOML file."""
    blocks = []
    files = {r["label"]: r["file"] for r in v.get("reproduce", "recipes")}
    for i, r in enumerate(v.get("runs")):
        changes = r["recipe_changes"]
        diff = (el("ul", None, *[el("li", None, el("code", None, c)) for c in changes]) if changes else
                el("p", None, "The defaults: every setting as Quant Workbench ships it."))
        s = r["recipe"]["global"]
        blocks += [el("h3", None, f"{r['label']}: ", el("code", None, r["recipe_source"] or "default recipe")),
                   el("p", {"class_": "sub"}, f"{s['activation_type']} activations, {s['weight_type']} "
                      f"{'per-channel' if s['per_channel'] else 'per-tensor'} weights, {s['calibration_method']} "
                      "calibration" + (f" at {s['percentile']:g}" if s["calibration_method"] == "percentile" else "")
                      + ". Differences from the defaults:"), diff,
                   code_block(r["recipe_toml"], files.get(r["label"], "recipe.toml"),
                              f"download {files.get(r['label'], 'recipe.toml')}")]
    return section("recipe", "Recipe", *blocks)


def model(v: View) -> Markup:
    """What was quantized: identity, size, inputs/outputs, op types, and the file's own descriptive fields."""
    m = v.get("model")
    f = v.get("final_run")
    int8 = v.get("runs", f, "int8_bytes")
    io_rows = [["input", el("code", None, t["name"]), shape_text(t["shape"]), t["dtype"]] for t in m["inputs"]]
    io_rows += [["output", el("code", None, t["name"]), shape_text(t["shape"]), t["dtype"]] for t in m["outputs"]]
    ops = el("div", {"class_": "chips"}, *[el("span", {"class_": "chip"}, op, " ", el("strong", None, str(n)))
                                           for op, n in m["op_types"].items()])
    opsets = ", ".join(f"{d} {ver}" for d, ver in m["opsets"].items())
    facts = kv([("source", el("code", None, m["source"])), ("SHA-256 (prepared)", el("code", None, m["sha256"][:16] + "…")),
                ("file size", fmt_bytes(m["file_bytes"]) if m["file_bytes"] is not None else None),
                ("FP32 → INT8 size", join([fmt_bytes(m["prepared_bytes"]), " → ", fmt_bytes(int8)]) if int8 else None),
                ("parameters", join([v.num(("model", "parameters"), "int")])),
                ("nodes", join([v.num(("model", "nodes"), "int"), " (", v.num(("model", "quantizable"), "int"),
                                " quantizable)"])),
                ("IR version / opsets", f"{m['ir_version']} / {opsets}"),
                ("producer", " ".join(x for x in (m["producer"], m["producer_version"]) if x) or None),
                ("domain", m["domain"] or None), ("model version", str(m["model_version"]) if m["model_version"] else None),
                ("graph name", m["graph_name"] or None)])
    meta = (table(["key", "value"], [[el("code", None, k), val] for k, val in m["metadata"].items()], id="metadata")
            if m["metadata"] else None)
    docs = []
    for title, text in (("Model doc string", m["doc_string"]), ("Graph doc string", m["graph_doc_string"])):
        if text:
            docs += [el("h3", None, title), el("pre", {"class_": "doc"}, text)]
    notes = [el("li", None, n) for n in m["notes"]]
    return section("model", "Model", facts,
                   el("h3", None, "Inputs and outputs"), table(["", "name", "shape", "type"], io_rows, id="model-io"),
                   el("h3", None, f"Op types ({len(m['op_types'])})"), ops,
                   el("h3", None, "Metadata") if meta else None, meta, *docs,
                   el("h3", None, "Preparation notes") if notes else None, el("ul", None, *notes) if notes else None)


def environment(v: View) -> Markup:
    """Where the numbers were computed."""
    e = v.get("environment")
    pk = ", ".join(f"{k} {val}" for k, val in e["packages"].items())
    return section("environment", "Environment",
                   kv([("packages", pk), ("CPU", f"{e['cpu']} ({e['cores_logical']} logical cores)"),
                       ("platform", e["platform"]), ("analysis backend", e["execution"]),
                       ("onnxruntime providers", ", ".join(e["providers"]))]))


def reproduce(v: View) -> Markup:
    """The exact command, the recipe files it reads, and the data it was run on (with content hashes)."""
    r = v.get("reproduce")
    data_rows = [[d["role"], d["description"], str(d["samples"]), "yes" if d["labels"] else "no",
                  el("code", None, d["sha256"][:16] + "…")] for d in v.get("data")]
    files = join([el("code", None, rf["file"]) for rf in r["recipes"]], ", ")
    rerun = r.get("rerun_command")
    how = ([el("p", None, "Run this in the report's folder: it reads the recipe file(s) ", files, " written beside "
               "the report (their content is under Recipe above), paths are relative to that folder, and it writes a "
               "new report next to this one:"), code_block(rerun),
            el("p", {"class_": "sub"}, "The command as it was typed:"), code_block(r["command"])] if rerun else
           [el("p", None, "Run this command with the recipe file(s) ", files,
               " saved next to it (see Recipe above for their content):"), code_block(r["command"])])
    return section("reproduce", "Reproduce", *how,
                   el("h3", None, "Data"),
                   table(["role", "source", "samples", "labels", "content hash"], data_rows, id="data-sets"),
                   el("ul", {"class_": "sub"}, *[el("li", None, n) for n in r["notes"]]))
