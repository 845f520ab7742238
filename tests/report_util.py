"""Reading report HTML as a browser's parser would: elements, attributes, text, and the numbers' pointers."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class Page(HTMLParser):
    """Every start tag with its attributes, the ids, the text, the numbers tagged with JSON pointers."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.numbers: list[dict] = []  # {ptr, value, scale, text}
        self.styles: list[str] = []
        self._stack: list[tuple[str, dict]] = []
        self._num: dict | None = None
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "style":
            self._in_style = True
            self.styles.append("")
        if tag == "span" and "data-ptr" in a:
            self._num = {"ptr": a["data-ptr"], "value": a["data-value"], "scale": float(a.get("data-scale", 1)),
                         "text": ""}

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        if tag == "span" and self._num is not None:
            self.numbers.append(self._num)
            self._num = None

    def handle_data(self, data):
        if self._in_style:
            self.styles[-1] += data
            return
        self.text.append(data)
        if self._num is not None:
            self._num["text"] += data

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def attrs(self, tag: str | None = None):
        return [a for t, a in self.tags if tag is None or t == tag]


def resolve(doc, ptr: str):
    """RFC 6901 pointer lookup (independent of the implementation under test)."""
    cur = doc
    for raw in ptr.lstrip("/").split("/") if ptr else []:
        key = raw.replace("~1", "/").replace("~0", "~")
        cur = cur[int(key)] if isinstance(cur, list) else cur[key]
    return cur


def shown_number(text: str) -> tuple[float, int] | None:
    """(value, decimals) of a number as displayed (unicode minus, thousands commas); None for a dash."""
    t = text.strip().replace("\u2212", "-").replace(",", "")
    if t in ("–", "-", ""):
        return None
    m = re.fullmatch(r"[+-]?\d+(?:\.(\d+))?(?:e[+-]?\d+)?", t)
    assert m, f"not a number: {text!r}"
    return float(t), len(m.group(1) or "")


EXTERNAL_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.I)
