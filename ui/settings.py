"""Preferences, window layout and recent files, persisted with QSettings.

``QWB_SETTINGS_DIR`` points everything at an INI file in that folder (tests use a temporary one so
they never read or write the user's settings). Values are declared once, with a version, so an old
settings file is migrated instead of misread (Orange3's ``settings_version`` idea).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

ORG = "QuantWorkbench"
APP = "Quant Workbench"
SETTINGS_VERSION = 1
MAX_RECENT = 10


def open_settings() -> QSettings:
    """The app's QSettings (an INI file under ``$QWB_SETTINGS_DIR`` when set)."""
    d = os.environ.get("QWB_SETTINGS_DIR")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        s = QSettings(str(Path(d) / "quant-workbench.ini"), QSettings.Format.IniFormat)
    else:
        s = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)
    if int(s.value("version", 0) or 0) < SETTINGS_VERSION:
        s.setValue("version", SETTINGS_VERSION)
    return s


@dataclass
class Preferences:
    """What a user can choose once and keep."""

    color_metric: str = "rank_key"  # rank_key | isolated | cumulative | amplification
    auto_analyze: bool = True  # analyse right after a model is opened
    autosave_seconds: int = 5
    histogram_log: bool = True
    exclude_n: int = 1
    analysis_samples: int = 0  # 0: every evaluation sample

    @classmethod
    def load(cls, s: QSettings) -> "Preferences":
        p = cls()
        raw = s.value("preferences")
        if raw:
            try:
                d = json.loads(raw)
                for k, v in d.items():
                    if hasattr(p, k) and isinstance(v, type(getattr(p, k))):
                        setattr(p, k, v)
            except (ValueError, TypeError):
                pass
        return p

    def save(self, s: QSettings) -> None:
        s.setValue("preferences", json.dumps(asdict(self)))


@dataclass(frozen=True)
class RecentItem:
    """A model with its data (or a project file) the user opened before."""

    model: str
    calib: str | None = None
    eval: str | None = None
    project: bool = False

    def label(self) -> str:
        if self.project:
            return f"{Path(self.model).name}  (project)"
        data = Path(self.calib).name if self.calib else "no data"
        return f"{Path(self.model).name}  —  {data}"


def recent_items(s: QSettings) -> list[RecentItem]:
    raw = s.value("recent")
    if not raw:
        return []
    try:
        return [RecentItem(**d) for d in json.loads(raw)][:MAX_RECENT]
    except (ValueError, TypeError):
        return []


def add_recent(s: QSettings, item: RecentItem) -> list[RecentItem]:
    items = [item] + [r for r in recent_items(s) if r != item and not (r.model == item.model
                                                                          and r.project == item.project)]
    items = items[:MAX_RECENT]
    s.setValue("recent", json.dumps([asdict(r) for r in items]))
    return items
