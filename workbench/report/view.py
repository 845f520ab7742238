"""Read the report's JSON document by pointer and render its numbers tagged with where they came from.

Every number the HTML shows goes through ``View.num``: it reads the value from the same dict that is
written as the JSON file and emits ``<span data-ptr="/runs/0/..." data-value="…">text</span>`` (the
pointer is RFC 6901). Tests and readers can therefore check any figure on the page against the JSON.
"""

from __future__ import annotations

import math

from .markup import Markup, el

# kind -> (decimals, scale, signed): how a value of that kind is written
KINDS = {
    "db": (1, 1, False), "db2": (2, 1, False), "ddb": (1, 1, True), "pct": (2, 100, False), "pct1": (1, 100, False),
    "dpct": (2, 100, True), "cos": (5, 1, False), "ms": (3, 1, False), "dms": (3, 1, True), "x": (2, 1, False),
    "int": (0, 1, False), "g": (None, 1, False), "ratio": (2, 1, False), "pctg": (None, 100, False),
    "setting": (None, 1, False),  # a value the user typed (a percentile): shown as set, never rounded
}
DASH = "–"


def pointer(*parts) -> str:
    """RFC 6901 JSON pointer from path parts (``~`` and ``/`` escaped)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(doc, ptr: str):
    """The value at RFC 6901 pointer ``ptr`` in ``doc``."""
    cur = doc
    if not ptr:
        return cur
    for raw in ptr.lstrip("/").split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        cur = cur[int(key)] if isinstance(cur, list) else cur[key]
    return cur


def format_value(v, kind: str) -> str:
    """The text a value of ``kind`` is shown as (no unit; None shows as a dash)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    dec, scale, signed = KINDS[kind]
    x = float(v) * scale
    if dec is None:
        return {"pctg": f"{x:.3g}", "setting": f"{x:.12g}"}.get(kind, f"{x:.4g}")
    if round(x, dec) == 0:
        x = 0.0  # a value that rounds to zero shows no sign ("−0.0" reads as a loss that is not there)
    s = f"{x:+,.{dec}f}" if signed else f"{x:,.{dec}f}"
    return s.replace("-", "−")


class View:
    """The report dict plus helpers that render its values with their pointers."""

    def __init__(self, doc: dict):
        self.doc = doc
        self._layer_index = [{lay["node"]: i for i, lay in enumerate(r["analysis"]["layers"])} for r in doc["runs"]]

    def get(self, *parts, default=None):
        try:
            return resolve(self.doc, pointer(*parts))
        except (KeyError, IndexError, TypeError, ValueError):
            return default

    def layer_index(self, run: int, node: str) -> int | None:
        return self._layer_index[run].get(node)

    def num(self, parts: tuple, kind: str = "db", css: str | None = None, colour: bool = True) -> Markup:
        """The value at ``parts`` rendered as ``kind``, tagged with its pointer and exact value; a signed kind is
        coloured up/down unless ``colour`` is False (a change within its noise)."""
        ptr = pointer(*parts)
        v = resolve(self.doc, ptr)
        _, scale, signed = KINDS[kind]
        cls = ["num"] + ([css] if css else [])
        if colour and signed and isinstance(v, (int, float)) and v is not None:
            cls.append("up" if v > 0 else "down" if v < 0 else "flat")
        return el("span", {"class_": " ".join(cls), "data-ptr": ptr, "data-value": "null" if v is None else repr(v),
                           "data-scale": scale if scale != 1 else None}, format_value(v, kind))
