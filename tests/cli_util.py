"""Run ``qwb`` as a user would: a separate process, no standard input, checking exit code and output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def qwb(*args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """``env``: variables to set on top of this process's environment (e.g. another QWB_CACHE_DIR)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout)
