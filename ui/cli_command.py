"""``qwb gui``: the desktop workbench, a ``qwb`` command that ui/ plugs in.

Registered under the entry-point group ``qwb.commands`` (pyproject.toml), which ``workbench.cli.main``
reads, so the core never names ui/ (import-linter's layers contract). This module must stay Qt-free:
``qwb --help`` and every other command import it; Qt is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys

from workbench.errors import WorkbenchError


def register(sub) -> None:
    p = sub.add_parser("gui", help="open the desktop workbench",
                       description="Open the desktop workbench, optionally on a model (with its data), a "
                       ".qwbproj project, or the bundled demo.")
    p.add_argument("model", nargs="?", help="model file, or a .qwbproj project")
    p.add_argument("--calib", metavar="DATA", help="calibration data (default: a *calib*.npz beside the model)")
    p.add_argument("--eval", metavar="DATA", help="evaluation data (labels give accuracy)")
    p.add_argument("--recipe", metavar="R", help="recipe TOML file")
    p.add_argument("--demo", action="store_true", help="open the bundled demo model and data")
    p.set_defaults(func=run)


def check_display(env=os.environ, platform: str = sys.platform) -> None:
    """Refuse, with the fix, to start Qt where it has no screen: its xcb plugin would abort the process with a
    raw message (exit 134) instead."""
    if platform.startswith("linux") and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
                                             or env.get("QT_QPA_PLATFORM")):
        raise WorkbenchError("qwb gui needs a display, and this session has none (no DISPLAY or WAYLAND_DISPLAY)",
                             "run it on a desktop, under a virtual screen: xvfb-run -a qwb gui ..., or with "
                             "QT_QPA_PLATFORM=offscreen for scripted use (no window is shown)")


def run(args: argparse.Namespace) -> int:
    check_display()
    try:
        from .app import run as run_gui  # noqa: PLC0415 - Qt loads here, only for this command
    except ImportError as e:
        raise WorkbenchError(f"the desktop app cannot start: {e}",
                             "install the GUI dependencies: pip install 'PySide6>=6.6' 'pyqtgraph>=0.13.7'") from e
    return run_gui(args.model, args.calib, args.eval, args.recipe, demo=args.demo)
