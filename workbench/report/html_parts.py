"""Small HTML building blocks the report sections share: tables, key/value lists, tags, download links."""

from __future__ import annotations

from urllib.parse import quote

from .markup import Markup, el

MAX_DOWNLOAD_BYTES = 512 * 1024


def table(headers: list, rows: list[list], *, num_cols: set[int] = frozenset(), row_classes: list | None = None,
          caption: str | None = None, id: str | None = None, name_col: int = 0) -> Markup:
    """A table in a sideways-scrolling box; ``num_cols`` are right-aligned, ``name_col`` holds names."""
    head = el("thead", None, el("tr", None, *[el("th", {"class_": "n" if i in num_cols else None}, h)
                                              for i, h in enumerate(headers)]))
    body = []
    for r, cells in enumerate(rows):
        cls = row_classes[r] if row_classes else None
        tds = []
        for i, c in enumerate(cells):
            if isinstance(c, Markup) and c.startswith("<td"):
                tds.append(c)
            else:
                tds.append(el("td", {"class_": "n" if i in num_cols else ("name" if i == name_col else None)}, c))
        body.append(el("tr", {"class_": cls}, *tds))
    return el("div", {"class_": "scroll"}, el("table", {"id": id}, el("caption", {"class_": "muted"}, caption)
                                                 if caption else None, head, el("tbody", None, *body)))


def kv(pairs: list[tuple]) -> Markup:
    """A definition list of (key, value) pairs; pairs whose value is None or '' are left out."""
    items = []
    for k, v in pairs:
        if v is None or v == "":
            continue
        items += [el("dt", None, k), el("dd", None, v)]
    return el("dl", {"class_": "kv"}, *items)


def tag(text: str, css: str = "") -> Markup:
    return el("span", {"class_": f"tag {css}".strip()}, text)


def precision_tag(p: str | None) -> Markup:
    if not p:
        return Markup("– ")
    return tag(p.upper(), f"p-{p}")


def download(text: str, filename: str, label: str, mime: str = "text/plain") -> Markup:
    """A link that saves ``text`` as ``filename`` (a data: URL, so nothing is fetched); omitted when huge."""
    data = text.encode("utf-8", errors="replace")
    if len(data) > MAX_DOWNLOAD_BYTES:
        return Markup("")
    href = f"data:{mime};charset=utf-8," + quote(data, safe="")
    return el("a", {"class_": "dl", "href": href, "download": filename}, label)


def code_block(text: str, filename: str | None = None, label: str | None = None) -> Markup:
    """Preformatted text with an optional download link above it."""
    link = download(text, filename, label or f"download {filename}") if filename else None
    return el("div", {"class_": "code"}, el("div", None, link) if link else None, el("pre", None, el("code", None, text)))


def section(sid: str, title: str, *children) -> Markup:
    return el("section", {"id": sid}, el("h2", None, title), *children)


def shape_text(shape) -> str:
    if shape is None:
        return "?"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
