"""Whether a backend can run here, as a value: the GUI and ``qwb backends`` show the reason and the fix.

Checking never raises and never imports a GPU runtime, so listing backends is instant and safe on any
machine; a backend that is missing something says exactly what and how to get it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Availability:
    """Can this backend run here? ``reason`` says why (or what it will use); ``fix`` how to enable it."""

    backend: str
    available: bool
    reason: str
    fix: str | None = None
    details: dict = field(default_factory=dict)  # e.g. SIMD features, providers, emulated CPU

    def to_dict(self) -> dict:
        return asdict(self)
