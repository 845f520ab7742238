"""The report's Tune section: a tune search's verified points on a Pareto plot (held-back metric vs latency), the
chosen point, and the table of every point, read from the report's ``tune`` block through a ``View``."""

from __future__ import annotations

from ..errors import WorkbenchError
from ..tune.target import parse_target
from .charts import ScatterPoint, scatter_chart
from .html_parts import section, table, tag
from .markup import Markup, el, join
from .view import View, format_value

SOURCES = {"int8": "full INT8", "global": "whole-model move", "ilp": "exact selection", "greedy": "greedy"}


def _kind(metric: str) -> str:
    return {"sqnr": "db2", "accuracy_drop": "pct", "cosine": "cos"}.get(metric, "ratio4")


def _metric_num(v: View, parts: tuple, metric: str) -> Markup:
    k = _kind(metric)
    if k == "ratio4":
        return v.num(parts, "g")
    return join([v.num(parts, k), "%" if metric == "accuracy_drop" else " dB" if metric == "sqnr" else ""])


def _label(metric: str) -> str:
    return {"sqnr": "output SQNR (dB)", "accuracy_drop": "accuracy drop (%)"}.get(metric, metric)


def tune(v: View) -> Markup | None:
    """The Pareto plot and points of the session's tune search; None when the report has none."""
    t = v.get("tune")
    if not t:
        return None
    metric, points = t.get("metric") or t["target"].split(">")[0].split("<")[0], t.get("points") or []
    scale = 100.0 if metric == "accuracy_drop" else 1.0
    chosen = t.get("chosen")
    pts = []
    for i, p in enumerate(points):
        if p.get("error") or p.get("latency_ms") is None or p.get("holdout_metric") is None:
            continue
        y_text = format_value(p["holdout_metric"], "pct" if metric == "accuracy_drop" else "g")
        pts.append(ScatterPoint(p["latency_ms"], p["holdout_metric"] * scale, "met" if p.get("met_holdout")
                                else "missed", f"{p['label']}: held-back {y_text}, {p['latency_ms']:.3f} ms",
                                f"/tune/points/{i}/holdout_metric",
                                None if p.get("search_metric") is None else p["search_metric"] * scale, i == chosen))
    front = [(p["latency_ms"], p["holdout_metric"] * scale) for p in points
             if p.get("pareto") and p.get("latency_ms") is not None and p.get("holdout_metric") is not None]
    target_value = _target_value(t["target"])
    chart = scatter_chart(pts, label=f"Tune: {_label(metric)} on held-back data vs latency",
                          x_label="latency (ms, one sample, deployed kernels)",
                          y_label=f"{_label(metric)}, held back", front=front,
                          hline=(target_value * scale, f"target {t['target']}") if target_value is not None else None)
    key = el("div", {"class_": "legend"},
             *[el("span", {"class_": "key"}, el("span", {"class_": f"sw {css}"}), text) for css, text in (
                 ("dot-met", "meets the target on held-back data"), ("dot-missed", "misses it"),
                 ("dot-alt", "same point on the search part"), ("s-front", "Pareto front"),
                 ("s-target", "target"), ("ring-chosen", "chosen point"))])
    rows = []
    for i, p in enumerate(points):
        pp = ("tune", "points", i)
        share = p.get("int8_mac_share")
        rows.append([str(i + 1), join([p["label"], " ", tag("chosen", "p-int16")]) if i == chosen else p["label"],
                     SOURCES.get(p.get("source"), p.get("source") or ""),
                     _metric_num(v, pp + ("search_metric",), metric), _metric_num(v, pp + ("holdout_metric",), metric),
                     "failed" if p.get("error") else "met" if p.get("met_holdout") else "missed",
                     v.num(pp + ("latency_ms",), "ms"), join([v.num(pp + ("int8_mac_share",), "pct1"), "%"])
                     if share is not None else "–", f"{p.get('floats', 0)} / {p.get('int16', 0)}",
                     "★" if p.get("pareto") else ""])
    stopped = t.get("stopped")
    facts = [el("p", None, "Target ", el("code", None, t["target"]), f", objective {t['objective']}. "
                f"{len(points)} verified points from ",
                v.num(("tune", "evaluations"), "int") if t.get("evaluations") is not None else "–",
                " evaluations in ", v.num(("tune", "elapsed_s"), "g") if t.get("elapsed_s") is not None else "–",
                " s. The search saw ", str(t.get("search_samples", "–")), " evaluation samples; every point was "
                "verified on ", str(t.get("holdout_samples", "–")), " held-back samples it never saw (filled dots; "
                "the hollow dot is the same point's figure on the search part).",
                f" The search stopped early ({stopped}); the points are those verified before." if stopped else "")]
    if chosen is not None and 0 <= chosen < len(points):
        c = points[chosen]
        facts.append(el("p", None, el("b", None, "Chosen point: "), c["label"], " — ",
                        _metric_num(v, ("tune", "points", chosen, "holdout_metric"), metric), " on held-back data (",
                        "meets" if c.get("met_holdout") else "does not meet", " the target), ",
                        v.num(("tune", "points", chosen, "latency_ms"), "ms"), " ms. ",
                        "The sections of this report describe its recipe." if t.get("chosen_is_final") else
                        "The report's run does not use its recipe."))
        moves = c.get("moves") or []
        if moves:
            facts.append(el("ul", None, *[el("li", None, el("code", None, m)) for m in moves]))
    notes = [el("p", {"class_": "sub"}, "note: ", n) for n in t.get("notes") or []]
    return section("tune", "Tune", *facts, el("figure", None, chart, key), table(
        ["#", "point", "from", "search part", "held back", "target", "latency (ms)", "MACs in INT8", "float / 16-bit",
         "Pareto"], rows, num_cols={0, 3, 4, 6, 7}, id="tune-points", name_col=1), *notes)



def _target_value(text: str) -> float | None:
    try:
        return parse_target(text).value
    except WorkbenchError:
        return None
