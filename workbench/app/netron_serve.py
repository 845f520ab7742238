"""Serve a model to Netron on 127.0.0.1 only, for the GUI's "Open in Netron".

Netron shows every attribute and shape of a model; rather than re-implementing that, the GUI serves
the file with the ``netron`` package on the loopback interface (never a public address) and shows
the page in an embedded browser, or in the system browser. Serving is a daemon thread inside this
process; ``stop`` ends it (the GUI calls it when the tab or the window closes).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import netron

from ..errors import WorkbenchError

HOST = "127.0.0.1"


def serve(path: str | Path) -> tuple[str, tuple[str, int]]:
    """Start serving ``path``; returns (url, address)."""
    path = Path(path)
    if not path.exists():
        raise WorkbenchError(f"model file not found: {path}", "reopen the model")
    root = logging.getLogger()
    added = None
    if not root.hasHandlers():  # netron.serve would call logging.basicConfig and print to the console
        added = logging.NullHandler()
        root.addHandler(added)
    try:
        address = netron.serve(str(path), None, address=(HOST, 0), browse=False)
    except OSError as e:
        raise WorkbenchError(f"could not start Netron's local server: {e}", "try again; check that 127.0.0.1 works") from e
    finally:
        if added is not None:
            root.removeHandler(added)
    return f"http://{address[0]}:{address[1]}", address


def stop(address: tuple[str, int]) -> None:
    """Stop serving at ``address`` and wait for the server thread to end."""


    netron.stop(address)
    for t in threading.enumerate():
        if getattr(t, "address", None) == address and t is not threading.current_thread():
            t.join(timeout=2.0)
