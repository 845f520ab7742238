"""The result sections of the HTML report: summary, before/after, outputs, worst layers, depth, histograms,
benchmarks. Each reads the report's JSON document through a ``View`` so its numbers carry their pointers."""

from __future__ import annotations

from ..formatting import EFFECTIVE_SQNR, EFFECTIVE_SQNR_DEF
from .charts import Series, bar_chart, histogram_chart, legend, line_chart
from .html_parts import precision_tag, section, table, tag
from .markup import Markup, el, join
from .view import View, format_value, pointer

TOP_LAYERS = 10
MAX_ALL_LAYERS = 80
MAX_CLASSES = 20


def _card(key: str, value: Markup | str, detail: Markup | str | None = None) -> Markup:
    return el("div", {"class_": "card"}, el("div", {"class_": "k"}, key), el("div", {"class_": "v"}, value),
              el("div", {"class_": "d muted"}, detail) if detail else None)


def summary(v: View, f: int) -> Markup:
    """Headline cards and a one-sentence verdict for the final run; each output figure names its mode."""
    s = v.get("runs", f, "summary")
    run = ("runs", f, "summary")
    cards = _output_cards(v, run, s)
    if s.get("deployed"):
        cards += _output_cards(v, run + ("deployed",), s["deployed"])
    cards.append(_card("Flagged layers", join([v.num(run + ("flagged",), "int"), " of ", v.num(run + ("layers",), "int")]),
                       join(["worst: ", s["worst_node"]]) if s["worst_node"] else None))
    kept = []
    if s["fp32_layers"]:
        kept.append(join([v.num(run + ("fp32_layers",), "int"), " FP32"]))
    if s["int16_layers"]:
        kept.append(join([v.num(run + ("int16_layers",), "int"), " INT16"]))
    if s.get("runtime_int8_layers"):
        kept.append(join([v.num(run + ("runtime_int8_layers",), "int"),
                          " kept in float by the recipe but re-quantized by onnxruntime"]))
    cards.append(_card("Layers in INT8", v.num(run + ("int8_layers",), "int"), join(kept, ", ") if kept else "all"))
    if s.get("macs_int8_share") is not None:
        cards.append(_card("INT8 MAC share", join([v.num(run + ("macs_int8_share",), "pct1"), "%"]),
                           "of the Conv/Gemm/MatMul compute, in layers the recipe sets to INT8"))
    bench = v.get("runs", f, "bench")
    if bench:
        for i, b in enumerate(bench["backends"]):
            if b["speedup"] is not None:
                cards.append(_card(f"Speed-up on {b['backend']}", join([v.num(("runs", f, "bench", "backends", i,
                                                                                "speedup"), "x"), "×"]),
                                   "INT8 vs FP32, p50"))
    return el("section", {"id": "summary"}, el("div", {"class_": "cards"}, *cards), _verdict(v, f))


def _output_cards(v: View, run: tuple, s: dict) -> list[Markup]:
    """The output figures of one summary (``run`` is its pointer), their keys suffixed with the mode."""
    m = f" ({s['kernels']})" if s.get("kernels") else ""
    cards = []
    if s["accuracy_fp32"] is not None:
        cards.append(_card("Accuracy FP32" + m, join([v.num(run + ("accuracy_fp32",), "pct"), "%"])))
        cards.append(_card("Accuracy INT8" + m, join([v.num(run + ("accuracy_int8",), "pct"), "%"]),
                           join([v.num(run + ("accuracy_delta",), "dpct"), " points"])))
    if s["top1_agreement"] is not None:
        cards.append(_card("Top-1 agreement" + m, join([v.num(run + ("top1_agreement",), "pct"), "%"]),
                           "INT8 vs FP32"))
    if s.get("cosine_mean") is not None:
        cards.append(_card("Embedding cosine" + m, v.num(run + ("cosine_mean",), "cos"),
                           join(["mean per sample; worst ", v.num(run + ("cosine_min",), "cos")])))
    if s.get("sequence_match") is not None:
        cards.append(_card("Decoded sequences equal" + m, join([v.num(run + ("sequence_match",), "pct"), "%"]),
                           join(["per-step agreement ", v.num(run + ("step_agreement",), "pct"), "%"])))
    if s["output_sqnr_db"] is not None:
        cards.append(_card("Output SQNR" + m, join([v.num(run + ("output_sqnr_db",), "db"), " dB"]), s["output"]))
    return cards


VERDICT_WORDS = {"good": "Good", "warn": "Check before shipping", "bad": "Not good enough"}


def _verdict(v: View, f: int) -> Markup:
    """The verdict (``verdict`` in the JSON: good / warn / bad from accuracy, agreement and output SQNR) and the
    sentence behind it; each figure that is not good is named with its threshold."""
    s = v.get("runs", f, "summary")
    run = ("runs", f, "summary")
    level = v.get("verdict")
    parts = [el("strong", {"data-ptr": "/verdict", "data-value": repr(level)}, f"Verdict: {VERDICT_WORDS[level]}. ")
             if level in VERDICT_WORDS else None]
    if s["accuracy_delta"] is not None:
        d = s["accuracy_delta"]
        acc = ["(", v.num(run + ("accuracy_fp32",), "pct"), "% → ", v.num(run + ("accuracy_int8",), "pct"), "%). "]
        mode = f"INT8 ({s['kernels']} kernels) " if s.get("kernels") else "INT8 "
        if d == 0:
            parts += [mode, "keeps the FP32 accuracy "] + acc
        else:
            parts += [mode, "loses" if d < 0 else "gains", " ", v.num(run + ("accuracy_delta",), "dpct"),
                      " points of accuracy "] + acc
        dep = s.get("deployed")
        if dep and dep.get("accuracy_int8") is not None:
            parts += ["With deployed kernels (this CPU) INT8 reaches ",
                      v.num(run + ("deployed", "accuracy_int8"), "pct"), "%. "]
    elif s.get("output_kind") == "embedding" and s.get("cosine_mean") is not None:
        parts += ["The ", s["output"], " embedding keeps a cosine of ", v.num(run + ("cosine_mean",), "cos"),
                  " to FP32 on average (worst sample ", v.num(run + ("cosine_min",), "cos"), "). "]
    elif s.get("output_kind") == "sequence" and s.get("sequence_match") is not None:
        parts += ["INT8 decodes the same sequence as FP32 for ", v.num(run + ("sequence_match",), "pct"),
                  "% of the samples (", v.num(run + ("step_agreement",), "pct"), "% of the steps agree). "]
    elif s["output_sqnr_db"] is not None:
        if s["top1_agreement"] is not None:
            parts += ["INT8 picks the same class as FP32 for ", v.num(run + ("top1_agreement",), "pct"),
                      "% of the samples; "]
        parts += ["output SQNR is ", v.num(run + ("output_sqnr_db",), "db"),
                  " dB (no labels, so no accuracy: judged by agreement and SQNR). "]
    if s["flagged"]:
        flagged = [lay for lay in v.get("runs", f, "analysis", "layers") if lay["flagged"]]
        names = join([el("code", None, lay["node"]) for lay in flagged[:4]], ", ")
        parts += [v.num(run + ("flagged",), "int"), " layer(s) flagged as causing error: ", names,
                  " …" if len(flagged) > 4 else "", ". See their hints below."]
    else:
        parts.append("No layer is flagged as causing error.")
    reasons = v.get("verdict_reasons") or []
    return el("div", {"class_": "verdict " + (level or "none"), "id": "verdict"}, el("p", None, *parts),
              el("ul", {"class_": "sub"}, *[el("li", None, r) for r in reasons]) if reasons else None)


def comparison(v: View) -> Markup | None:
    """Before/after: outputs, the layers that changed, and the latency cost."""
    c = v.get("comparison")
    if not c:
        return None
    rb, ra = c["before"], c["after"]
    names = [_run_name(v, rb), _run_name(v, ra)]
    out_rows = []
    for i, o in enumerate(c["outputs"]):
        p = ("comparison", "outputs", i)
        out_rows.append([o["name"], o.get("kernels") or "exact", v.num(p + ("sqnr_before",), "db"), v.num(p + ("sqnr_after",), "db"),
                         v.num(p + ("sqnr_delta",), "ddb"), v.num(p + ("top1_before",), "pct"),
                         v.num(p + ("top1_after",), "pct"), v.num(p + ("accuracy_before",), "pct"),
                         v.num(p + ("accuracy_after",), "pct"), v.num(p + ("accuracy_delta",), "dpct")])
    outputs = table(["output", "kernels", "SQNR before (dB)", "after", "Δ dB", "top-1 agr. before (%)", "after",
                     "INT8 acc. before (%)", "after", "Δ points"], out_rows, num_cols=set(range(2, 10)),
                    id="compare-outputs")
    changed = [(i, lay) for i, lay in enumerate(c["layers"]) if lay["changed"]]
    rows, classes = [], []
    for i, lay in changed:
        p = ("comparison", "layers", i)
        prec = join([precision_tag(lay["precision_before"]), "→ ", precision_tag(lay["precision_after"])]) \
            if lay["precision_before"] != lay["precision_after"] else precision_tag(lay["precision_after"])
        pct = ""
        if lay["percentile_before"] != lay["percentile_after"]:
            pct = join(["percentile ", format_value(lay["percentile_before"], "setting"), " → ",
                        format_value(lay["percentile_after"], "setting")])
        flag = ("now flagged" if lay["flagged_after"] and not lay["flagged_before"] else
                "no longer flagged" if lay["flagged_before"] and not lay["flagged_after"] else
                "flagged" if lay["flagged_after"] else "")
        rows.append([join([el("code", None, lay["node"]), " ", tag(lay["op_type"])]), join([prec, " ", pct]),
                     v.num(p + ("isolated_before",), "db"), v.num(p + ("isolated_after",), "db"),
                     v.num(p + ("isolated_delta",), "ddb"), v.num(p + ("cumulative_before",), "db"),
                     v.num(p + ("cumulative_after",), "db"), v.num(p + ("cumulative_delta",), "ddb"), flag])
        classes.append("changed")
    layers = (table(["layer", "setting", "isolated before (dB)", "after", "Δ", "cumulative before (dB)", "after", "Δ",
                     "flag"], rows, num_cols={2, 3, 4, 5, 6, 7}, row_classes=classes, id="compare-layers")
              if rows else el("p", {"class_": "muted"}, "No layer changed."))
    cv = c.get("verdict")
    cmp_words = {"better": "the after run is better", "worse": "the after run is worse",
                 "mixed": "the after run is better in some figures and worse in others",
                 "same": "no measurable difference"}
    css = {"better": "good", "worse": "bad", "mixed": "warn", "same": "none"}.get(cv, "none")
    compare_verdict = el("div", {"class_": f"verdict {css}", "id": "compare-verdict"},
                         el("p", None, el("strong", {"data-ptr": "/comparison/verdict", "data-value": repr(cv)},
                                          f"Before → after: {cmp_words.get(cv, 'not judged')}.")),
                         el("ul", {"class_": "sub"}, *[el("li", None, r) for r in c.get("verdict_reasons") or []]))
    return section("compare", "Before / after",
                   el("p", None, "Before: ", el("strong", None, names[0]), ". After: ", el("strong", None, names[1]),
                      ". Same model and data; the sections below describe the after run."), compare_verdict,
                   el("h3", None, "Model outputs"), outputs,
                   el("h3", None, f"Layers that changed ({len(changed)} of {len(c['layers'])})"),
                   el("p", {"class_": "sub"}, "A layer is listed when its precision or percentile changed, its flag "
                      f"changed, or its cumulative SQNR moved by at least {c['threshold_db']:g} dB. SQNR: higher is "
                      "better."), layers,
                   el("h3", None, "Latency"), _latency(v, c))


def _run_name(v: View, i: int) -> str:
    """The recipe a run used, by file name ('default recipe' when none was given)."""
    src = v.get("runs", i, "recipe_source")
    if not src:
        return "default recipe"
    # a recipe file by its name; a GUI run name (which may hold slashes, "run 3 / cat fp32") whole
    return src.replace("\\", "/").rsplit("/", 1)[-1] if src.lower().endswith(".toml") else src


def _spread(v: View, p: tuple, which: str) -> Markup | str:
    """A run's p50 with its spread under it (p10–p90 of the p50s of repeated rounds)."""
    lo, hi = v.get(*p, f"{which}_p50_p10_ms"), v.get(*p, f"{which}_p50_p90_ms")
    mid = v.num(p + (f"{which}_ms",), "ms")
    if lo is None or hi is None:
        return mid
    return join([mid, el("br", None), el("small", {"class_": "muted"}, v.num(p + (f"{which}_p50_p10_ms",), "ms"), "–",
                                         v.num(p + (f"{which}_p50_p90_ms",), "ms"))])


def _latency(v: View, c: dict) -> Markup:
    """INT8 p50 before and after with each run's p50 spread; the change is coloured as a win or a loss only
    when the two spreads do not overlap (anything else is what re-running the same command gives)."""
    if not c["latency"]:
        return el("p", {"class_": "muted"}, "Not measured: add --bench cpu to qwb report to time both INT8 models.")
    rows = []
    for i, lat in enumerate(c["latency"]):
        p = ("comparison", "latency", i)
        real = lat.get("outcome") in ("faster", "slower")
        rows.append([lat["backend"], v.num(p + ("fp32_ms",), "ms"), _spread(v, p, "before"), _spread(v, p, "after"),
                     v.num(p + ("delta_ms",), "dms", colour=real),
                     join([v.num(p + ("delta_share",), "dpct", colour=real), "%"]),
                     lat.get("outcome") or "spread not measured"])
    return el("div", {"class_": "lat"},
              table(["backend", "FP32 p50 (ms)", "INT8 before p50 (ms), p10–p90", "INT8 after p50 (ms), p10–p90",
                     "Δ ms", "Δ", "outcome"], rows, num_cols={1, 2, 3, 4, 5}, id="compare-latency"),
              el("p", {"class_": "sub"}, "p10–p90: the timed runs of each model are cut into rounds of consecutive "
                 "runs; the range is the p10 to p90 of the rounds' p50s, the spread a p50 shows when the same model is "
                 "timed again. A change counts as faster or slower only when the two ranges do not overlap; otherwise "
                 "it is within the noise of this machine and is not coloured."))


def outputs(v: View, f: int) -> Markup:
    """FP32 vs INT8 at the model outputs, and the classes whose accuracy drops."""
    a = ("runs", f, "analysis")
    rows = []
    per_class = []
    for i, o in enumerate(v.get(*a, "outputs")):
        p = a + ("outputs", i)
        rows.append([o["name"], o.get("kind") or "", o.get("kernels") or "exact", v.num(p + ("sqnr_db",), "db"), v.num(p + ("cosine",), "cos"),
                     _kind_cell(v, p, o), v.num(p + ("accuracy_fp32",), "pct"), v.num(p + ("accuracy_int8",), "pct")])
        drops = [(k, c) for k, c in enumerate(o["per_class"]) if c["accuracy_int8"] is not None
                 and c["accuracy_fp32"] is not None and c["accuracy_int8"] < c["accuracy_fp32"]]
        drops.sort(key=lambda kc: kc[1]["accuracy_int8"] - kc[1]["accuracy_fp32"])
        if o["per_class"]:
            crow = [[str(c["label"]), v.num(p + ("per_class", k, "count"), "int"),
                     v.num(p + ("per_class", k, "accuracy_fp32"), "pct"),
                     v.num(p + ("per_class", k, "accuracy_int8"), "pct")] for k, c in drops[:MAX_CLASSES]]
            per_class.append(el("h3", None, f"Classes losing accuracy: {o['name']} ({o.get('kernels') or 'exact'})"))
            per_class.append(table(["class label", "samples", "FP32 (%)", "INT8 (%)"], crow, num_cols={1, 2, 3},
                                   id=f"classes-{i}") if crow else el("p", {"class_": "muted"},
                                                                      "No class loses accuracy."))
            rest = len(o["per_class"]) - len(drops)
            per_class.append(el("p", {"class_": "sub"}, f"{len(drops)} of {len(o['per_class'])} classes lose accuracy"
                                f"{'' if len(drops) <= MAX_CLASSES else f' ({MAX_CLASSES} shown)'}; {rest} keep or "
                                "gain it. A drift in a rare class hides in the average."))
    samples = v.get(*a, "samples")
    return section("outputs", "Model outputs: FP32 vs INT8",
                   el("p", {"class_": "sub"}, f"On {samples} evaluation samples. Each output is judged by its kind: "
                      "a classifier by top-1 agreement (how often INT8 picks the same class as FP32), an embedding "
                      "by the cosine of each sample's vectors (mean / worst), a sequence by per-step argmax "
                      "agreement and how often the greedy CTC decodes are equal, dense outputs by SQNR and the "
                      "largest absolute error. Accuracy needs labels in the evaluation data (class indices, or "
                      "label sequences for a sequence output: exact match of the decode). Kernels: exact = Q/DQ "
                      "as written (onnxruntime without graph optimization, as qdq_loss_debug); deployed = onnxruntime "
                      "with full optimizations on the CPU that made this report (what an application runs)."),
                   table(["output", "kind", "kernels", "SQNR (dB)", "cosine", "agreement INT8 vs FP32",
                          "accuracy FP32 (%)", "accuracy INT8 (%)"], rows, num_cols={3, 4, 5, 6, 7},
                         id="outputs-table"), *per_class)


def _kind_cell(v: View, p: tuple, o: dict) -> Markup | str:
    """The figure that says how well INT8 agrees with FP32 for an output of this kind."""
    kind = o.get("kind")
    if kind == "classifier":
        return join(["top-1 ", v.num(p + ("top1_agreement",), "pct"), "%"])
    if kind == "embedding":
        return join(["cosine mean ", v.num(p + ("cosine_mean",), "cos"), ", worst ", v.num(p + ("cosine_min",), "cos")])
    if kind == "sequence":
        return join(["steps ", v.num(p + ("step_agreement",), "pct"), "%, decoded ",
                     v.num(p + ("sequence_match",), "pct"), "%"])
    if kind == "dense":
        return join(["max-abs error ", v.num(p + ("max_abs",), "g")])
    return v.num(p + ("top1_agreement",), "pct")


def _sqnr_cell(v: View, p: tuple, which: str, m: dict | None) -> Markup | str:
    """Tensor SQNR with the mean / worst channel SQNR under it."""
    if not m:
        return "–"
    return join([v.num(p + (which, "sqnr_db"), "db"), el("br", None),
                 el("small", {"class_": "muted"}, "ch ", v.num(p + (which, "channel_sqnr_mean"), "db"), " / ",
                    v.num(p + (which, "channel_sqnr_min"), "db"))])


def _layer_name(lay: dict) -> Markup:
    return join([el("code", None, lay["node"]), " ", tag(lay["op_type"]),
                 precision_tag(lay["precision"]) if lay["precision"] != "int8" else None,
                 tag("flagged", "bad") if lay["flagged"] else None])


def _worst_row(v: View, f: int, i: int, lay: dict) -> list:
    p = ("runs", f, "analysis", "layers", i)
    return [_layer_name(lay), v.num(p + ("rank_key_db",), "db") if lay.get("rank_key_db") is not None else "–",
            _sqnr_cell(v, p, "isolated", lay["isolated"]),
            _sqnr_cell(v, p, "cumulative", lay["cumulative"]), v.num(p + ("amplification",), "db"),
            v.num(p + ("introduced_db",), "db"),
            join([v.num(p + ("clip_rate",), "pctg"), "%"]) if lay["clip_rate"] is not None else "–",
            v.num(p + ("weight", "sqnr_db"), "db") if lay["weight"] else "–"]


def _gap_cell(v: View, p: tuple, lay: dict) -> Markup | str:
    """The layer's kernel gap (exact - deployed SQNR, dB) with the share of values >= 1 LSB off under it."""
    d = lay.get("deployed")
    if not d or d.get("kernel_gap_db") is None:
        return "–"
    departs = any(h["code"] == "kernel_departs" for h in lay["hints"])
    return join([v.num(p + ("deployed", "kernel_gap_db"), "db"), " " if departs else None,
                 tag("kernel departs", "bad") if departs else None, el("br", None),
                 el("small", {"class_": "muted"},
                    join([v.num(p + ("deployed", "lsb_diff_share"), "pctg"), "% ≥ 1 LSB"]
                         + ([" · alone ", v.num(p + ("deployed", "own_gap_db"), "db")]
                            if d.get("own_gap_db") is not None else [])))])


def _all_row(v: View, f: int, i: int, lay: dict) -> list:
    p = ("runs", f, "analysis", "layers", i)
    return [el("code", None, lay["node"]), lay["op_type"], lay["precision"],
            v.num(p + ("rank_key_db",), "db") if lay.get("rank_key_db") is not None else "–",
            v.num(p + ("isolated", "sqnr_db"), "db") if lay["isolated"] else "–",
            v.num(p + ("cumulative", "sqnr_db"), "db"), v.num(p + ("amplification",), "db"),
            tag("flagged", "bad") if lay["flagged"] else ""]


def layers(v: View, f: int) -> Markup:
    """The worst layers by isolated error with their hints, then every layer in graph order."""
    all_layers = v.get("runs", f, "analysis", "layers")
    # a deployed-only analysis has no isolated error (it needs the exact simulation): ranked by the SQNR each
    # layer loses as deployed, and its cumulative figures are the deployed kernels'
    deployed_only = v.get("runs", f, "analysis", "layer_kernels") == "deployed"
    ranked = sorted(range(len(all_layers)), key=lambda i: _introduced_key(all_layers[i]) if deployed_only
                    else _iso_key(all_layers[i]))
    rows, classes = [], []
    # a deployed per-layer view beside the exact one was measured (kernel gap)
    dep = any(lay.get("deployed") for lay in all_layers) and not deployed_only
    for rank, i in enumerate(ranked[:TOP_LAYERS], 1):
        lay = all_layers[i]
        p = ("runs", f, "analysis", "layers", i)
        rows.append([str(rank)] + _worst_row(v, f, i, lay) + ([_gap_cell(v, p, lay)] if dep else []))
        classes.append("flagged" if lay["flagged"] else None)
        if lay["hints"] and (lay["flagged"] or rank <= 3):
            items = [el("li", None, h["message"], el("br", None), el("span", {"class_": "hint-try"}, "try: ",
                                                                      h["suggestion"])) for h in lay["hints"]]
            rows.append([Markup(""), el("td", {"colspan": 9 if dep else 8}, el("ul", {"class_": "hints"}, *items))])
            classes.append("flagged hint-row" if lay["flagged"] else "hint-row")
    cum_head = "cumulative SQNR dB (deployed kernels)" if deployed_only else "cumulative SQNR dB"
    heads = ["#", "layer", "effective SQNR dB", "isolated tensor SQNR dB", cum_head, "amplif. dB",
             "introduced dB", "clipped", "weight SQNR dB"] + (["kernel gap dB (deployed)"] if dep else [])
    th = v.get("runs", f, "analysis", "thresholds")
    notes = v.get("runs", f, "analysis", "notes") or []  # e.g. the attention-mask path kept in float
    shown = all_layers[:MAX_ALL_LAYERS]
    every = [_all_row(v, f, i, lay) for i, lay in enumerate(shown)]
    if dep:
        every = [r[:-1] + [_gap_cell(v, ("runs", f, "analysis", "layers", i), lay), r[-1]] for i, (r, lay) in
                 enumerate(zip(every, shown))]
    return section(
        "layers", "Worst layers and why",
        el("p", {"class_": "sub"}, DEPLOYED_ONLY_TEXT) if deployed_only else None,
        el("p", {"class_": "sub"}, f"Ranked by the {EFFECTIVE_SQNR_DEF} of the isolated layer "
           "(the layer alone quantized, fed float inputs, which separates layers that cause error from layers that "
           "carry it; JSON rank_key_db), with the tensor SQNR and the per-channel mean / worst beside it; amplification = isolated − cumulative tensor SQNR; ch = mean / worst output channel, "
           "over channels with signal and error (dead and exact channels are left out). "
           f"Flagged: isolated SQNR {th['isolated_below_median_db']:g} dB below the median layer, under "
           f"{th['isolated_floor_db']:g} dB, or {th['introduced_db']:g} dB lost at the node. Higher SQNR is better."
           + (" Kernel gap (deployed kernels): the exact simulation's cumulative SQNR minus the SQNR of the same tensor "
              "read from onnxruntime's fused kernels on the analysing CPU, with the share of values at least one "
              "quantization step (LSB) apart; 'alone': the same kernel fed the simulation's own inputs, so what it "
              "adds itself; 'kernel departs' marks a layer whose kernel alone loses 1 dB or more."
              if dep else "")),
        table(heads, rows, num_cols={0, 2, 3, 4, 5, 6, 7, 8} | ({9} if dep else set()), row_classes=classes,
              id="worst-layers", name_col=1),
        *_model_hints(v, f),
        el("h3", None, "Notes on this run") if notes else None,
        el("ul", {"class_": "hints", "id": "run-notes"}, *[el("li", None, n) for n in notes]) if notes else None,
        el("h3", None, f"All layers in graph order ({len(all_layers)})"),
        table(["layer", "op", "precision", "effective SQNR dB", "isolated tensor dB",
               "cumulative dB (deployed kernels)" if deployed_only else "cumulative dB", "amplif. dB"]
              + (["kernel gap dB (deployed)"] if dep else []) + [""], every,
              num_cols={3, 4, 5, 6} | ({7} if dep else set()),
              row_classes=["flagged" if lay["flagged"] else None for lay in shown],
              id="all-layers"),
        el("p", {"class_": "sub"}, f"{len(all_layers) - MAX_ALL_LAYERS} more layers in the JSON file.")
        if len(all_layers) > MAX_ALL_LAYERS else None)


def _model_hints(v: View, f: int) -> list:
    """Hints about the whole model (attention, spread-out error with its measured cost, kernel saturation)."""
    hints = v.get("runs", f, "analysis", "hints") or []
    if not hints:
        return []
    items = [el("li", None, h["message"], el("br", None), el("span", {"class_": "hint-try"}, "try: ", h["suggestion"]))
             for h in hints]
    return [el("h3", None, "Hints for the whole model"), el("ul", {"class_": "hints", "id": "model-hints"}, *items)]


DEPLOYED_ONLY_TEXT = ("Analysed with deployed kernels only (--kernels deployed): every layer SQNR here is the layer's "
                      "quantized output as onnxruntime's fused kernels compute it on the analysing CPU, against FP32; "
                      "the exact Q/DQ simulation was skipped, so isolated error, amplification, the effective "
                      "(isolated) key and the kernel gap are not computed (–). Ranked and flagged by the SQNR a layer "
                      "loses itself as deployed (introduced dB, worst first); run --kernels both for the exact figures.")


def _introduced_key(lay: dict) -> float:
    """Worst first by the SQNR lost at the node (largest introduced dB first; layers without it last)."""
    x = lay.get("introduced_db")
    return float("inf") if x is None else -x


def _iso_key(lay: dict) -> float:
    key = lay.get("rank_key_db")
    if key is None and lay["isolated"] and lay["isolated"]["sqnr_db"] is not None:  # reports before rank_key_db
        key = min(x for x in (lay["isolated"]["sqnr_db"], lay["isolated"]["channel_sqnr_mean"]) if x is not None)
    return float("inf") if key is None else key


def _effective(v: View, run: int, j: int | None, kind: str) -> tuple[float | None, str]:
    """One layer's effective SQNR (``EFFECTIVE_SQNR_DEF``, the figure the GUI's depth chart draws) for ``kind``
    isolated or cumulative, with the JSON pointer it is read from; reports written before the field existed fall
    back to min(tensor, channel mean) computed here, without a pointer."""
    if j is None:
        return None, ""
    base = ("runs", run, "analysis", "layers", j)
    if kind == "isolated":
        key = v.get(*base, "rank_key_db", default=_MISSING)
        if key is not _MISSING:
            return key, pointer(*base, "rank_key_db")
    err = v.get(*base, kind)
    if not err:
        return None, ""
    if "effective_sqnr_db" in err:
        return err["effective_sqnr_db"], pointer(*base, kind, "effective_sqnr_db")
    vals = [x for x in (err.get("sqnr_db"), err.get("channel_sqnr_mean")) if x is not None]
    return (min(vals) if vals else None), ""


_MISSING = object()


def _effective_series(v: View, run: int, lays: list, kind: str, name: str, css: str, dashed: bool = False) -> Series:
    vals, ptrs = [], []
    for lay in lays:
        val, ptr = _effective(v, run, v.layer_index(run, lay["node"]), kind)
        vals.append(val)
        ptrs.append(ptr)
    return Series(name, vals, css, ptrs, dashed=dashed)


def depth(v: View, f: int) -> Markup:
    """Per-layer effective SQNR along depth: isolated and cumulative, and the before run's when comparing. The
    same figure the GUI's depth chart draws and layers are ranked by, so a flagged layer is a dip here too."""
    lays = v.get("runs", f, "analysis", "layers")
    labels = [lay["node"] for lay in lays]
    series = [_effective_series(v, f, lays, "isolated", "isolated", "s-iso"),
              _effective_series(v, f, lays, "cumulative", "cumulative", "s-cum")]
    c = v.get("comparison")
    if c:
        b = c["before"]
        series[:0] = [_effective_series(v, b, lays, "isolated", "isolated before", "s-iso", dashed=True),
                      _effective_series(v, b, lays, "cumulative", "cumulative before", "s-cum", dashed=True)]
    marks = {i for i, lay in enumerate(lays) if lay["flagged"]}
    chart = line_chart(labels, series, label=f"{EFFECTIVE_SQNR} per layer along depth (dB)", marks=marks,
                       y_label=f"{EFFECTIVE_SQNR} (dB)")
    return section("depth", f"{EFFECTIVE_SQNR[0].upper()}{EFFECTIVE_SQNR[1:]} along depth",
                   el("p", {"class_": "sub"}, f"Every analysed layer in graph order, drawn as {EFFECTIVE_SQNR_DEF} "
                      "(the figure layers are ranked and flagged by, and the one the GUI's depth chart draws; "
                      "the layer tables give the tensor SQNR beside it). Cumulative: the fully quantized "
                      "model's tensor vs FP32 (error propagated from upstream). Isolated: the layer alone quantized. "
                      "A drop in isolated SQNR marks a cause; cumulative falling while isolated stays high marks "
                      "error carried from upstream. Hover a point for its value."),
                   el("figure", None, el("div", {"class_": "wide"}, chart),
                      legend(series, [("flag", "flagged layer")])))


def histograms(v: View, f: int) -> Markup:
    """Calibration histograms of the flagged layers' outputs with each run's range."""
    hs = v.get("runs", f, "histograms") or []
    if not hs:
        return section("histograms", "Histograms and calibration ranges",
                       el("p", {"class_": "muted"}, "No calibrated tensor to show."))
    figs = []
    for i, h in enumerate(hs):
        p = ("runs", f, "histograms", i)
        ranges: list = []
        for name, r in h["ranges"].items():  # identical ranges (nothing changed for this tensor) share one label
            same = next((i for i, x in enumerate(ranges) if (x[1], x[2]) == (r["lo"], r["hi"])), None)
            if same is None:
                ranges.append(("range" if name == "run" else name, r["lo"], r["hi"], f"r{len(ranges)}"))
            else:
                ranges[same] = (f"{ranges[same][0]} = {name}",) + ranges[same][1:]
        chart = histogram_chart(h["lo"], h["hi"], h["counts"], ranges,
                                label=f"histogram of {h['tensor']} with calibration range")
        rows = []
        for name, r in h["ranges"].items():
            q = p + ("ranges", name)
            method = r["method"] + (f" {format_value(r['percentile'], 'setting')}" if r["percentile"] is not None else "")
            rows.append([("" if name == "run" else f"{name}: ") + f"{method} {r['qtype']}",
                         join(["[", v.num(q + ("lo",), "g"), ", ", v.num(q + ("hi",), "g"), "]"]),
                         join([v.num(q + ("clip_rate",), "pctg"), "%"]), join([v.num(q + ("grid_usage",), "pct1"), "%"]),
                         join([v.num(q + ("outlier_share",), "pct1"), "%"]), v.num(q + ("predicted_sqnr_db",), "db")])
        for name in h.get("float_in") or []:
            rows.append([f"{name}: kept in FP32", el("td", {"colspan": 5, "class_": "muted"}, "not quantized")])
        rtable = el("div", {"class_": "compact"}, table(
            ["method" if list(h["ranges"]) == ["run"] else "run: method", "range", "clipped", "grid used",
             "outliers", "pred. dB"], rows, num_cols={2, 3, 4, 5}))
        lab = None
        if h.get("methods"):
            mrows = [[m + (" ★" if m == h.get("winner") else ""),
                      join(["[", v.num(p + ("methods", m, "lo"), "g"), ", ", v.num(p + ("methods", m, "hi"), "g"), "]"]),
                      join([v.num(p + ("methods", m, "clip_rate"), "pctg"), "%"]),
                      v.num(p + ("methods", m, "predicted_sqnr_db"), "db")] for m in h["methods"]]
            lab = el("div", {"class_": "compact"}, el("p", {"class_": "sub"}, "Calibration lab: every method on "
                                                      "this tensor (★ = best predicted SQNR)"),
                     table(["method", "range", "clipped", "pred. dB"], mrows, num_cols={2, 3}))
        why = {"flagged": "flagged", "worst": "worst layer (none flagged)"}.get(h["why"], h["why"])
        figs.append(el("figure", {"id": f"hist-{i}"},
                       el("h3", None, el("code", None, h["node"]), " ", tag(h["op_type"]), tag(why, "bad")
                          if "flagged" in h["why"] else tag(why)),
                       el("figcaption", None, "output tensor ", el("code", None, h["tensor"]), "; ",
                          v.num(p + ("count",), "int"), " calibration values in [", v.num(p + ("min",), "g"), ", ",
                          v.num(p + ("max",), "g"), "], ", v.num(p + ("zeros",), "int"), " exact zeros; log scale"),
                       chart, rtable, lab))
    return section("histograms", "Histograms and calibration ranges",
                   el("p", {"class_": "sub"}, "Values of each flagged layer's output on the calibration data (count on "
                      "a log scale, so rare outliers show), with the range each run's recipe quantizes it to; shaded: "
                      "values clipped. Figures are predicted from the histogram."),
                   el("div", {"class_": "grid2"}, *figs))


def _p50_spread(v: View, p: tuple, row: dict | None) -> Markup | str:
    """A model's p50 with its spread under it: p10–p90 of the p50s of repeated rounds (when the benchmark kept it)."""
    if not row:
        return "–"
    if row.get("p50_p10_ms") is None or row.get("p50_p90_ms") is None:
        return v.num(p + ("p50_ms",), "ms")
    return join([v.num(p + ("p50_ms",), "ms"), el("br", None), el("small", {"class_": "muted"},
                                                                   v.num(p + ("p50_p10_ms",), "ms"), "–",
                                                                   v.num(p + ("p50_p90_ms",), "ms"))])


def bench(v: View, f: int) -> Markup:
    """Latency FP32 vs INT8 per backend and how much of the INT8 model runs in integer kernels."""
    runs = [f] + ([v.get("comparison", "before")] if v.get("comparison") else [])
    blocks = []
    for r in runs:
        b = v.get("runs", r, "bench")
        if not b:
            continue
        rows, bars = [], []
        for i, be in enumerate(b["backends"]):
            p = ("runs", r, "bench", "backends", i)
            if not be["available"]:
                rows.append([be["backend"], el("td", {"colspan": 7}, "not available: ", be["reason"] or "")])
                continue
            cov = (join([v.num(p + ("nodes_int8",), "int"), " INT8 / ", v.num(p + ("nodes_float",), "int"), " float"])
                   if be["nodes_int8"] is not None else "–")
            rows.append([be["backend"], v.num(p + ("batch",), "int") if be["batch"] is not None else "–",
                         _p50_spread(v, p + ("fp32",), be["fp32"]), _p50_spread(v, p + ("int8",), be["int8"]),
                         join([v.num(p + ("speedup",), "x"), "×"]) if be["speedup"] is not None else "–", cov,
                         join([v.num(p + ("macs_int8_share",), "pct1"), "%"]) if be["macs_int8_share"] is not None
                         else "–", "; ".join(f"{k}: {m}" for k, m in be["failures"].items())])
            if be["fp32"]:
                bars.append((f"{be['backend']} FP32", be["fp32"]["p50_ms"], "fp32",
                             f"/runs/{r}/bench/backends/{i}/fp32/p50_ms"))
            if be["int8"]:
                bars.append((f"{be['backend']} INT8", be["int8"]["p50_ms"], "int8",
                             f"/runs/{r}/bench/backends/{i}/int8/p50_ms"))
        floats = [el("li", None, el("code", None, fn)) for be in b["backends"] for fn in be["float_nodes"]]
        host = b.get("host") or {}
        blocks += [el("h3", None, f"{v.get('runs', r, 'label')}: {_run_name(v, r)}") if len(runs) > 1 else None,
                   table(["backend", "batch", "FP32 p50 (ms), spread", "INT8 p50 (ms), spread", "speed-up", "INT8 coverage (nodes)",
                          "MACs in INT8", "failures"], rows, num_cols={1, 2, 3, 4, 6}, id=f"bench-{r}"),
                   el("figure", None, bar_chart(bars, label="p50 latency per backend (ms)")) if bars else None,
                   el("p", {"class_": "sub"}, "Timed on ", host.get("cpu", "this machine"),
                      f", {b['settings'].get('threads')} threads, {b['settings'].get('runs')} runs"
                      if b.get("settings") else ""),
                   el("div", None, el("p", {"class_": "sub"}, "Nodes left in float by onnxruntime:"),
                      el("ul", None, *floats)) if floats else None]
    if not blocks:
        blocks = [el("p", {"class_": "muted"}, "Not run. Add ", el("code", None, "--bench cpu"), " to ",
                     el("code", None, "qwb report"), " to time FP32 vs INT8 and measure INT8 coverage.")]
    return section("bench", "Benchmark", *blocks)
