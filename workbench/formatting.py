"""Numbers as people read them, shared by the console and the reports so both print a size the same way."""

from __future__ import annotations


def fmt_bytes(n: float | None) -> str:
    """1536 -> '1.5 KB' (binary units, one decimal; whole bytes below 1 KB); None -> '–'."""
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
