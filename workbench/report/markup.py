"""Escaping-by-default HTML building: the only way report HTML is produced.

Every string that reaches a report may come from the model file (node names, doc strings, metadata),
from a recipe or from a path the user typed, so nothing is ever concatenated into HTML raw. ``el``
escapes every child that is not already ``Markup`` and every attribute value; it refuses event-handler
attributes, tags that run or load anything, and links other than in-page anchors and ``data:`` files.
``clean`` also makes invisible or direction-changing characters visible, so a name cannot pretend to
be another one on screen (and lone surrogates cannot break the UTF-8 file).
"""

from __future__ import annotations

import html
import re
import unicodedata

#: Tags a report may contain (HTML and the SVG subset the charts use). script/style/iframe/object/embed/
#: link/meta/img/form are not here: the page's one <style> and <meta> are written by the page template.
ALLOWED_TAGS = frozenset(
    "a abbr b bdi br caption code dd div dl dt em figcaption figure footer h1 h2 h3 h4 header li main nav "
    "ol p pre section small span strong sub sup table tbody td tfoot th thead tr ul details summary "
    "svg g line path polyline polygon rect circle text title tspan desc".split())
_ATTR_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*$")  # SVG needs viewBox, preserveAspectRatio
_URL_ATTRS = frozenset({"href", "src", "xlink:href", "action", "formaction"})
_VOID = frozenset({"br"})


class Markup(str):
    """A string that is already safe HTML (produced by ``esc``/``el``/``join``), never escaped twice."""

    __slots__ = ()

    def __add__(self, other):  # keep the type when safe pieces are joined
        return Markup(str.__add__(self, other if isinstance(other, Markup) else esc(other)))


def clean(text) -> str:
    """``text`` as a str with control, format (bidi overrides, zero-width) and surrogate characters made
    visible as ``\\u202e``-style escapes; tab and newline are kept."""
    s = str(text)
    if s.isprintable() and s.isascii():
        return s
    out = []
    for ch in s:
        if ch in "\n\t":
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co") or cat == "Cn" and (0xFDD0 <= ord(ch) <= 0xFDEF or ord(ch) & 0xFFFE == 0xFFFE):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def esc(value) -> Markup:
    """Escape ``value`` for HTML text or a quoted attribute (``Markup`` passes through unchanged)."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(clean(value), quote=True))


def join(parts, sep: str | Markup = "") -> Markup:
    """Concatenate pieces, escaping the ones that are not ``Markup``."""
    return Markup(esc(sep).join(esc(p) for p in parts if p is not None))


def _check_url(name: str, value: str) -> None:
    v = str(value).strip().lower()
    if not v.startswith(("#", "data:text/plain", "data:application/json")):
        raise ValueError(f"report links may only be in-page anchors or data: files, not {value[:40]!r}")


def el(tag: str, attrs: dict | None = None, *children) -> Markup:
    """``<tag attrs>children</tag>`` with every attribute value and non-Markup child escaped.

    ``attrs`` keys are fixed by our code (``class_`` for ``class``; underscores become dashes otherwise);
    a value of None or False drops the attribute, True writes it bare.
    """
    if tag not in ALLOWED_TAGS:
        raise ValueError(f"tag <{tag}> is not allowed in a report")
    out = ["<", tag]
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        name = "class" if key == "class_" else key.rstrip("_").replace("_", "-")
        if not _ATTR_RE.match(name) and name not in ("xml:space", "xlink:href"):
            raise ValueError(f"bad attribute name {name!r}")
        if name.lower().startswith("on") or name.lower() in ("style", "srcdoc"):
            raise ValueError(f"attribute {name!r} is not allowed in a report")
        if name.lower() in _URL_ATTRS:
            _check_url(name, value)
        if value is True:
            out.append(f" {name}")
        else:
            out.append(f' {name}="{esc(_attr_text(value))}"')
    out.append(">")
    if tag in _VOID:
        return Markup("".join(out))
    out.extend(esc(c) for c in _flatten(children))
    out.append(f"</{tag}>")
    return Markup("".join(out))


def _attr_text(value) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _flatten(children):
    for c in children:
        if c is None or c is False:
            continue
        if isinstance(c, (list, tuple)):
            yield from _flatten(c)
        else:
            yield c
