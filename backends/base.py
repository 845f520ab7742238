"""What every backend provides: a name, an availability value, the providers, and how to start its child.

A backend object is cheap and holds no session: the session is built by a runner inside the child
process the backend's ``command`` starts (natively, or under QEMU for neon-emulated).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .availability import Availability

WORKER = Path(__file__).resolve().with_name("worker.py")


class Backend:
    """Base class: native backends run the worker with this Python; subclasses set providers."""

    name = "backend"
    emulated = False  # True: numerics and coverage only, never timings
    description = ""

    def availability(self) -> Availability:
        """Can it run here, and why (never raises, loads nothing heavy)."""
        raise NotImplementedError

    def providers(self, threads: int) -> list:
        """onnxruntime providers for timing, in priority order (names or [name, options])."""
        return ["CPUExecutionProvider"]

    def coverage_providers(self, threads: int) -> list:
        """Providers for reading INT8 coverage (a compiling provider like TensorRT hides its kernels)."""
        return self.providers(threads)

    def required_providers(self) -> list[str]:
        """Providers whose silent fallback to CPU must fail the run instead of timing the wrong thing."""
        return []

    def command(self, request_path: str) -> tuple[list[str], dict | None]:
        """The child-process command line (and environment) that runs the worker on a request."""
        return [sys.executable, "-B", str(WORKER), request_path], dict(os.environ)
