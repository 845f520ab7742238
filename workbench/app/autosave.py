"""Autosave and crash recovery: each running app writes its work to its own file; a file whose
process is gone is work a crash left behind, and the next start offers it back.

Files live in ``<cache>/autosave/autosave-<pid>.qwbproj`` and carry the writer's pid and process start
time (so a recycled pid is not mistaken for the writer still running). A clean exit deletes its own
file. Several app instances never step on each other's files.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from ..paths import cache_dir
from .project import SUFFIX, write_json_atomic


def autosave_dir() -> Path:
    d = cache_dir() / "autosave"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return None


@dataclass
class Orphan:
    """Autosaved work whose app is no longer running."""

    path: Path
    saved: float
    model: str | None
    runs: int
    edits: int

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved))
        model = Path(self.model).name if self.model else "no model"
        return f"{model}, {self.runs} run(s), {self.edits} layer override(s), autosaved {when}"


class Autosaver:
    """This process's autosave file."""

    def __init__(self, directory: Path | None = None):
        self.dir = directory or autosave_dir()
        self.pid = os.getpid()
        self.started = _process_started(self.pid) or time.time()
        self.path = self.dir / f"autosave-{self.pid}{SUFFIX}"

    def write(self, project: dict) -> Path:
        data = dict(project)
        data["autosave"] = {"pid": self.pid, "started": self.started}
        write_json_atomic(self.path, data)
        return self.path

    def clear(self) -> None:
        """Delete this process's file (a clean exit, or the work was saved as a project)."""
        for p in (self.path, self.path.with_name(self.path.name + ".tmp")):
            p.unlink(missing_ok=True)


def _alive(pid: int, started: float | None) -> bool:
    if pid == os.getpid():
        return True
    t = _process_started(pid)
    return t is not None and (started is None or abs(t - started) < 1.0)


def orphans(directory: Path | None = None) -> list[Orphan]:
    """Autosaves left by processes that are gone, newest first (unreadable files are skipped)."""
    d = directory or autosave_dir()
    out = []
    for p in d.glob(f"autosave-*{SUFFIX}"):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            meta = data.get("autosave") or {}
            if _alive(int(meta.get("pid", -1)), meta.get("started")):
                continue
            model = (data.get("model") or {}).get("path")
            out.append(Orphan(p, float(data.get("saved") or p.stat().st_mtime), model, len(data.get("runs") or []),
                              len((data.get("recipe") or {}).get("layers") or {})))
        except (OSError, ValueError, TypeError, AttributeError):
            continue
    return sorted(out, key=lambda o: -o.saved)


def discard(orphan: Orphan) -> None:
    """Forget an orphan (the user declined it, or it was restored and now lives in this process's file)."""
    orphan.path.unlink(missing_ok=True)
