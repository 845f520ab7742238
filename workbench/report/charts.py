"""Inline SVG charts for reports: SQNR along depth, histograms with calibration ranges, latency bars, and a tune
search's Pareto plot.

Plain SVG built with ``markup.el`` (so every label is escaped), styled by classes from the page's CSS
(colours follow print and screen), scaled by ``viewBox`` to any width. Each plotted value carries its
JSON pointer where it has one, and a ``<title>`` that shows the exact figure on hover without script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .markup import Markup, el, join


@dataclass
class Series:
    """One line of a line chart: a value (or None, a gap) per x position."""

    name: str
    values: list
    css: str  # class for colour: s-iso, s-cum, s-before ...
    ptrs: list = field(default_factory=list)  # JSON pointer per value ('' for none)
    dashed: bool = False


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 12)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(start + len(ticks) * step, 12))
    if len(ticks) == 1:
        ticks.append(round(start + step, 12))
    return ticks


def fmt_tick(v: float) -> str:
    """Short tick label: 3 significant digits, no exponent for everyday magnitudes."""
    if v == 0:
        return "0"
    a = abs(v)
    if 1e-3 <= a < 1e5:
        s = f"{v:.3f}".rstrip("0").rstrip(".") if a < 1 else f"{v:.4g}"
        return s
    return f"{v:.2g}"


def _f(x: float) -> str:
    return f"{x:.1f}"


def _svg(w: int, h: int, label: str, *children, cls: str = "chart") -> Markup:
    return el("svg", {"class_": cls, "viewBox": f"0 0 {w} {h}", "role": "img", "aria-label": label,
                      "preserveAspectRatio": "xMidYMid meet"},
              el("title", None, label), *children)


def line_chart(labels: list[str], series: list[Series], *, label: str, y_label: str = "SQNR (dB)",
               x_label: str = "layer, in graph order (input → output)", marks: set[int] | None = None,
               width: int = 860, height: int = 340) -> Markup:
    """Values per position (layers in graph order) as lines with points; ``marks`` ring flagged positions. Dashed
    series (a comparison's before run) are drawn last, over the others, so they stay visible where they agree."""
    n = len(labels)
    vals = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if not n or not vals:
        return el("p", {"class_": "muted"}, "no values to plot")
    rotate = n <= 48
    left, right, top = 52, 14, 14
    longest = min(22, max(len(s) for s in labels))
    bottom = (24 + int(longest * 4.6) + 18) if rotate else 54  # rotated labels: ~6.5 px per character at 45 degrees
    pw, ph = width - left - right, height - top - bottom
    ticks = nice_ticks(min(vals), max(vals), 5)
    y0, y1 = ticks[0], ticks[-1]

    def X(i):
        return left + (pw * (i + 0.5) / n)

    def Y(v):
        return top + ph * (1 - (v - y0) / ((y1 - y0) or 1))

    grid = [el("line", {"class_": "grid", "x1": left, "x2": left + pw, "y1": _f(Y(t)), "y2": _f(Y(t))}) for t in ticks]
    ylab = [el("text", {"class_": "tick", "x": left - 6, "y": _f(Y(t) + 4), "text-anchor": "end"}, fmt_tick(t))
            for t in ticks]
    xlab = []
    step = 1 if rotate else max(1, math.ceil(n / 16))
    for i in range(0, n, step):
        if rotate:
            text = labels[i] if len(labels[i]) <= 22 else labels[i][:21] + "…"
            xlab.append(el("text", {"class_": "tick", "x": _f(X(i)), "y": top + ph + 12, "text-anchor": "end",
                                    "transform": f"rotate(-45 {_f(X(i))} {top + ph + 12})"}, text))
        else:
            xlab.append(el("text", {"class_": "tick", "x": _f(X(i)), "y": top + ph + 16, "text-anchor": "middle"},
                           str(i + 1)))
    lines, points = [], []
    for s in sorted(series, key=lambda s: s.dashed):  # stable: dashed series last, on top
        seg: list[str] = []
        segs = []
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v):
                if seg:
                    segs.append(seg)
                seg = []
                continue
            seg.append(f"{_f(X(i))},{_f(Y(v))}")
        if seg:
            segs.append(seg)
        for sg in segs:
            lines.append(el("polyline", {"class_": f"line {s.css}" + (" dashed" if s.dashed else ""),
                                         "points": " ".join(sg)}))
        for i, v in enumerate(s.values):
            if v is None or not math.isfinite(v):
                continue
            ptr = s.ptrs[i] if i < len(s.ptrs) else ""
            points.append(el("circle", {"class_": f"pt {s.css}", "cx": _f(X(i)), "cy": _f(Y(v)),
                                        "r": 2 if s.dashed else 3,
                                        "data-ptr": ptr or None, "data-value": repr(float(v))},
                             el("title", None, f"{labels[i]}: {s.name} {v:.2f} dB")))
    rings = []
    for i in sorted(marks or ()):
        at = [s.values[i] for s in series if s.values[i] is not None and math.isfinite(s.values[i])]
        if at:
            rings.append(el("circle", {"class_": "flag-ring", "cx": _f(X(i)), "cy": _f(Y(min(at))), "r": 7},
                            el("title", None, f"{labels[i]}: flagged")))
    axis = [el("line", {"class_": "axis", "x1": left, "x2": left, "y1": top, "y2": top + ph}),
            el("line", {"class_": "axis", "x1": left, "x2": left + pw, "y1": top + ph, "y2": top + ph}),
            el("text", {"class_": "axis-label", "x": 12, "y": _f(top + ph / 2), "text-anchor": "middle",
                        "transform": f"rotate(-90 12 {_f(top + ph / 2)})"}, y_label),
            el("text", {"class_": "axis-label x-label", "x": _f(left + pw / 2), "y": height - 4,
                        "text-anchor": "middle"}, x_label if rotate else f"{x_label}, numbered")]
    return _svg(width, height, label, *grid, *axis, *ylab, *xlab, *lines, *rings, *points)


def legend(series: list[Series], extra: list[tuple[str, str]] = ()) -> Markup:
    """An HTML legend for a chart's series (class -> swatch)."""
    items = [el("span", {"class_": "key"}, el("span", {"class_": f"sw {s.css}" + (" dashed" if s.dashed else "")}),
                s.name) for s in series]
    items += [el("span", {"class_": "key"}, el("span", {"class_": f"sw {css}"}), text) for css, text in extra]
    return el("div", {"class_": "legend"}, *items)


def histogram_chart(lo: float, hi: float, counts: list[int], ranges: list[tuple[str, float, float, str]], *,
                    label: str, width: int = 480, height: int = 210) -> Markup:
    """Counts over [lo, hi] on a log scale, with each (name, range lo, range hi, css) drawn as two lines and
    the part of the data the first range clips shaded."""
    if not counts:
        return el("p", {"class_": "muted"}, "empty histogram")
    xs = [lo, hi] + [v for _, a, b, _ in ranges for v in (a, b) if v is not None and math.isfinite(v)]
    d0, d1 = min(xs), max(xs)
    pad = (d1 - d0) * 0.04 or 1.0
    d0, d1 = d0 - pad, d1 + pad
    left, right, top, bottom = 46, 10, 22 + 12 * max(0, len(ranges) - 1), 44
    pw, ph = width - left - right, height - top - bottom

    def X(v):
        return left + pw * (v - d0) / (d1 - d0)

    peak = math.log10(1 + max(counts))
    bw = (hi - lo) / len(counts)
    parts = []
    for i, c in enumerate(counts):
        if c <= 0:
            continue
        x0, x1 = X(lo + i * bw), X(lo + (i + 1) * bw)
        hh = ph * math.log10(1 + c) / (peak or 1)
        parts.append(f"M{_f(x0)} {_f(top + ph)}V{_f(top + ph - hh)}H{_f(max(x1, x0 + 0.6))}V{_f(top + ph)}Z")
    bars = el("path", {"class_": "bars", "d": "".join(parts)})
    shade, marks = [], []
    for k, (name, a, b, css) in enumerate(ranges):
        if a is None or b is None:
            continue
        y_text = 12 + 12 * k
        if k == 0:
            if a > lo:
                shade.append(el("rect", {"class_": "clipped", "x": _f(X(lo)), "y": top, "width": _f(X(a) - X(lo)),
                                         "height": ph}))
            if b < hi:
                shade.append(el("rect", {"class_": "clipped", "x": _f(X(b)), "y": top, "width": _f(X(hi) - X(b)),
                                         "height": ph}))
        for v, anchor in ((a, "end"), (b, "start")):
            marks.append(el("line", {"class_": f"range {css}", "x1": _f(X(v)), "x2": _f(X(v)), "y1": top - 4,
                                     "y2": top + ph}))
        marks.append(el("text", {"class_": f"range-label {css}", "x": _f((X(a) + X(b)) / 2), "y": y_text,
                                 "text-anchor": "middle"}, f"{name}: [{fmt_tick(a)}, {fmt_tick(b)}]"))
    ticks = [t for t in nice_ticks(d0, d1, 4) if d0 <= t <= d1]
    xt = [el("text", {"class_": "tick", "x": _f(X(t)), "y": top + ph + 16, "text-anchor": "middle"}, fmt_tick(t))
          for t in ticks]
    axis = el("line", {"class_": "axis", "x1": left, "x2": left + pw, "y1": top + ph, "y2": top + ph})
    yaxis = [el("line", {"class_": "axis", "x1": left, "x2": left, "y1": top, "y2": top + ph}),
             el("text", {"class_": "axis-label", "x": 10, "y": _f(top + ph / 2), "text-anchor": "middle",
                         "transform": f"rotate(-90 10 {_f(top + ph / 2)})"}, "count (log)"),
             el("text", {"class_": "axis-label x-label", "x": _f(left + pw / 2), "y": height - 4,
                         "text-anchor": "middle"}, "value")]
    for k in range(0, int(math.floor(math.log10(max(counts)))) + 1) if max(counts) >= 1 else ():
        c = 10 ** k  # bars are drawn at log10(1 + count): a tick at count c sits at log10(1 + c)
        y = top + ph - ph * math.log10(1 + c) / (peak or 1)
        yaxis += [el("line", {"class_": "grid", "x1": left - 3, "x2": left, "y1": _f(y), "y2": _f(y)}),
                  el("text", {"class_": "tick", "x": left - 5, "y": _f(y + 4), "text-anchor": "end"},
                     f"{c:,}" if k < 6 else f"1e{k}")]
    return _svg(width, height, label, *shade, bars, axis, *yaxis, *xt, *marks, cls="chart hist")


def bar_chart(rows: list[tuple[str, float | None, str, str]], *, label: str, unit: str = "ms",
              width: int = 640) -> Markup:
    """Horizontal bars: (row label, value, css, JSON pointer) per row; a missing value is drawn as 'n/a'."""
    vals = [v for _, v, _, _ in rows if v is not None and math.isfinite(v)]
    if not rows or not vals:
        return el("p", {"class_": "muted"}, "no timings to plot")
    row_h, left, right, top = 24, 150, 70, 6
    height = top + row_h * len(rows) + 8
    vmax = max(vals)
    pw = width - left - right
    out = []
    for i, (name, v, css, ptr) in enumerate(rows):
        y = top + i * row_h
        text = name if len(name) <= 24 else name[:23] + "…"
        out.append(el("text", {"class_": "tick", "x": left - 8, "y": y + 16, "text-anchor": "end"}, text))
        if v is None or not math.isfinite(v):
            out.append(el("text", {"class_": "tick", "x": left + 4, "y": y + 16}, "n/a"))
            continue
        w = pw * v / vmax if vmax > 0 else 0
        out.append(el("rect", {"class_": f"bar {css}", "x": left, "y": y + 4, "width": _f(max(w, 1)), "height": 16,
                               "data-ptr": ptr or None, "data-value": repr(float(v))},
                      el("title", None, f"{name}: {v:.3g} {unit}")))
        out.append(el("text", {"class_": "tick", "x": _f(left + max(w, 1) + 6), "y": y + 16}, f"{v:.3g} {unit}"))
    return _svg(width, height, label, *out, cls="chart bars-h")


@dataclass
class ScatterPoint:
    """One point of a scatter chart: ``y`` drawn filled (class ``css``), ``y_alt`` (if any) hollow and linked to
    it; ``ring`` circles it; ``ptr`` is the JSON pointer of ``y``."""

    x: float
    y: float
    css: str
    title: str
    ptr: str = ""
    y_alt: float | None = None
    ring: bool = False


def scatter_chart(points: list[ScatterPoint], *, label: str, x_label: str, y_label: str,
                  front: list[tuple[float, float]] = (), hline: tuple[float, str] | None = None,
                  width: int = 720, height: int = 340) -> Markup:
    """Points over two measured axes, with a line through ``front`` (e.g. the Pareto points) and a dashed
    horizontal ``hline`` (value, name) such as an accuracy target."""
    pts = [p for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    if not pts:
        return el("p", {"class_": "muted"}, "no points to plot")
    ys = [p.y for p in pts] + [p.y_alt for p in pts if p.y_alt is not None and math.isfinite(p.y_alt)]
    if hline is not None:
        ys.append(hline[0])
    xs = [p.x for p in pts]
    left, right, top, bottom = 58, 16, 14, 44
    pw, ph = width - left - right, height - top - bottom
    yt, xt = nice_ticks(min(ys), max(ys), 5), nice_ticks(min(xs), max(xs), 6)
    y0, y1, x0, x1 = yt[0], yt[-1], xt[0], xt[-1]

    def X(v):
        return left + pw * (v - x0) / ((x1 - x0) or 1)

    def Y(v):
        return top + ph * (1 - (v - y0) / ((y1 - y0) or 1))

    out = [el("line", {"class_": "grid", "x1": left, "x2": left + pw, "y1": _f(Y(t)), "y2": _f(Y(t))}) for t in yt]
    out += [el("text", {"class_": "tick", "x": left - 6, "y": _f(Y(t) + 4), "text-anchor": "end"}, fmt_tick(t))
            for t in yt]
    out += [el("text", {"class_": "tick", "x": _f(X(t)), "y": top + ph + 16, "text-anchor": "middle"}, fmt_tick(t))
            for t in xt]
    out += [el("line", {"class_": "axis", "x1": left, "x2": left, "y1": top, "y2": top + ph}),
            el("line", {"class_": "axis", "x1": left, "x2": left + pw, "y1": top + ph, "y2": top + ph}),
            el("text", {"class_": "axis-label", "x": 12, "y": _f(top + ph / 2), "text-anchor": "middle",
                        "transform": f"rotate(-90 12 {_f(top + ph / 2)})"}, y_label),
            el("text", {"class_": "axis-label", "x": _f(left + pw / 2), "y": height - 6, "text-anchor": "middle"},
               x_label)]
    if hline is not None and math.isfinite(hline[0]):
        out += [el("line", {"class_": "target-line", "x1": left, "x2": left + pw, "y1": _f(Y(hline[0])),
                            "y2": _f(Y(hline[0]))}),
                el("text", {"class_": "range-label target", "x": left + pw - 4, "y": _f(Y(hline[0]) - 5),
                            "text-anchor": "end"}, hline[1])]
    line = [f"{_f(X(a))},{_f(Y(b))}" for a, b in sorted(front) if math.isfinite(a) and math.isfinite(b)]
    if len(line) > 1:
        out.append(el("polyline", {"class_": "line front", "points": " ".join(line)}))
    for p in pts:
        if p.y_alt is not None and math.isfinite(p.y_alt):
            out.append(el("line", {"class_": "link", "x1": _f(X(p.x)), "x2": _f(X(p.x)), "y1": _f(Y(p.y_alt)),
                                   "y2": _f(Y(p.y))}))
            out.append(el("circle", {"class_": "pt alt", "cx": _f(X(p.x)), "cy": _f(Y(p.y_alt)), "r": 3.5}))
    for p in pts:
        if p.ring:
            out.append(el("circle", {"class_": "chosen-ring", "cx": _f(X(p.x)), "cy": _f(Y(p.y)), "r": 9}))
        out.append(el("circle", {"class_": f"pt {p.css}", "cx": _f(X(p.x)), "cy": _f(Y(p.y)), "r": 5,
                                 "data-ptr": p.ptr or None, "data-value": repr(float(p.y))},
                      el("title", None, p.title)))
    return _svg(width, height, label, *out, cls="chart scatter")


__all__ = ["Series", "ScatterPoint", "line_chart", "legend", "histogram_chart", "bar_chart", "scatter_chart",
           "nice_ticks", "fmt_tick", "join"]
