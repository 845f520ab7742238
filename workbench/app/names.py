"""Short forms of layer names that keep the part telling them apart (table cells, graph boxes).

Exported models name layers by scope (``/features/features.12/conv/Conv``): the start is shared by every
layer and the end is often the op type, so cutting either end or the middle by width alone removes the
only part that differs (``/features/featur…``). Here the prefix every name shares is dropped (cut at a
scope separator), and when that is still too wide the segment where a name first differs from its
nearest neighbours is kept and the rest elided around it. Qt-free: the caller passes ``fits(text)``
(its font metrics), so this is unit-tested without a window. No library does this (Qt's elide modes cut
by position only).
"""

from __future__ import annotations

import bisect
import os
from typing import Callable, Iterable

SEPARATORS = "/.:_"
ELLIPSIS = "…"


def _seps(name: str) -> str:
    """Scope separators of ``name``: '/' alone when it has any ("features.12" stays one segment)."""
    return "/" if "/" in name else SEPARATORS


def _cut_back(name: str, i: int) -> int:
    """The start of the scope segment holding character ``i`` (just after the separator before it)."""
    i = min(i, len(name))
    seps = _seps(name)
    while i > 0 and name[i - 1] not in seps:
        i -= 1
    return i


def _segment_end(name: str, i: int) -> int:
    """The end of the segment starting at ``i`` (the next separator, kept with the segment, or the end)."""
    j = i
    seps = _seps(name)
    while j < len(name) and name[j] not in seps:
        j += 1
    return min(j + 1, len(name)) if j < len(name) and j > i else max(j, i + 1)


class NameShortener:
    """Shortens the names of one model consistently; see the module docstring."""

    def __init__(self, names: Iterable[str]):
        names = [n for n in dict.fromkeys(names) if n]
        self._sorted = sorted(names)
        prefix = os.path.commonprefix(self._sorted) if len(self._sorted) > 1 else ""
        cut = len(prefix)
        # cut at a separator, so the kept part starts with a whole segment ("features.12/", not "2/")
        while cut > 0 and prefix[cut - 1] not in SEPARATORS:
            cut -= 1
        self.prefix = prefix[:cut]

    def distinct_at(self, name: str) -> int:
        """Index of the first character where ``name`` differs from both sorted neighbours."""
        k = bisect.bisect_left(self._sorted, name)
        best = 0
        for j in (k - 1, k + 1) if (k < len(self._sorted) and self._sorted[k] == name) else (k - 1, k):
            if 0 <= j < len(self._sorted):
                best = max(best, len(os.path.commonprefix([name, self._sorted[j]])))
        return min(best, max(len(name) - 1, 0))

    def short(self, name: str) -> str:
        """``name`` without the prefix shared by every name (marked with an ellipsis)."""
        p = len(self.prefix)
        if p and name.startswith(self.prefix) and len(name) > p:
            return ELLIPSIS + name[p:]
        return name

    def fit(self, name: str, fits: Callable[[str], bool]) -> str:
        """The longest of a few short forms of ``name`` that ``fits``; the distinguishing segment always stays."""
        p = len(self.prefix) if name.startswith(self.prefix) and len(name) > len(self.prefix) else 0
        d = self.distinct_at(name)
        s = max(_cut_back(name, d), p)  # start of the segment where this name differs
        e = _segment_end(name, s)
        last = _cut_back(name, len(name))
        tail = name[last:] if last > e else ""
        cands = [name]
        # drop whole leading segments, one at a time, never past the distinguishing one
        cands += [ELLIPSIS + name[k:] for k in range(max(p, 1), s + 1)
                  if k == s or name[k - 1] in _seps(name)]
        if tail:
            cands.append((ELLIPSIS if s else "") + name[s:e] + ELLIPSIS + tail)
        cands.append((ELLIPSIS if s else "") + name[s:e] + (ELLIPSIS if e < len(name) else ""))
        for c in cands:
            if fits(c):
                return c
        # not even one segment fits: keep characters around the first differing one
        core = name[s:e]
        k = max(d - s, 0)
        for width in range(len(core) - 1, 0, -1):
            lo = max(0, min(k - width // 2, len(core) - width))
            c = ELLIPSIS + core[lo:lo + width] + ELLIPSIS
            if fits(c):
                return c
        return ELLIPSIS
