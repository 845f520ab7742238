"""How problems reach the user: a message bar inside the window, and a last-resort exception hook.

Core errors (``WorkbenchError``: bad model, data mismatch, backend unavailable) carry a message and a
fix; they appear in a bar at the top of the window, never as a console traceback. Anything else that
escapes is a bug: the hook shows it in a dialog with the traceback under "Details" and writes it to
``<cache>/crash.log`` so it can be reported.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from workbench.errors import WorkbenchError
from workbench.paths import cache_dir


@dataclass
class ErrorInfo:
    """What to show: a short title, the message, how to fix it, and (for bugs) the traceback."""

    title: str
    message: str
    fix: str | None = None
    details: str = ""
    is_bug: bool = False

    @classmethod
    def from_exception(cls, e: BaseException, doing: str, tb: str = "") -> "ErrorInfo":
        if isinstance(e, WorkbenchError):
            return cls(f"Could not {doing}", e.message, e.fix, tb)
        if isinstance(e, MemoryError):
            return cls(f"Could not {doing}", "ran out of memory",
                       "use fewer evaluation samples, or close other programs", tb)
        return cls(f"Could not {doing}", f"internal error: {type(e).__name__}: {e}",
                   "this is a bug in Quant Workbench; the details below help to report it", tb, True)

    def text(self) -> str:
        return self.message + (f"\nFix: {self.fix}" if self.fix else "")


class MessageBar(QFrame):
    """A dismissible coloured bar at the top of the window (errors, warnings, notices)."""

    sigAction = Signal(str)
    STYLES = {
        "error": "background:#fde8e8; border:1px solid #e0a0a0; color:#5a1010;",
        "warning": "background:#fff4d6; border:1px solid #e6c66e; color:#4d3a00;",
        "info": "background:#e6f0fb; border:1px solid #9dbbe0; color:#0d2f57;",
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.label, 1)
        self.details_button = QPushButton("Details…")
        self.details_button.clicked.connect(self._show_details)
        lay.addWidget(self.details_button)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(close)
        self.info: ErrorInfo | None = None
        self.level = "info"
        self.hide()

    def show_error(self, info: ErrorInfo) -> None:
        self.info = info
        fix = f"<br><b>Fix:</b> {_esc(info.fix)}" if info.fix else ""
        self._show("error", f"<b>{_esc(info.title)}:</b> {_esc(info.message)}{fix}", bool(info.details))

    def show_message(self, text: str, level: str = "info") -> None:
        self.info = None
        self._show(level, _esc(text), False)

    def _show(self, level: str, html: str, details: bool) -> None:
        self.level = level
        self.setStyleSheet(f"#messageBar {{{self.STYLES[level]} border-radius:4px;}} QLabel {{border:none;}}")
        self.label.setText(html)
        self.details_button.setVisible(details)
        self.show()

    def _show_details(self) -> None:
        if self.info is not None:
            show_error_dialog(self.window(), self.info)


def _esc(s: str | None) -> str:
    return (s or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", "<br>")


def show_error_dialog(parent: QWidget | None, info: ErrorInfo) -> QMessageBox:
    """A non-blocking message box (``open()``, not ``exec()``): the app keeps running behind it."""
    box = QMessageBox(QMessageBox.Icon.Critical if info.is_bug else QMessageBox.Icon.Warning, info.title,
                      info.message, QMessageBox.StandardButton.Ok, parent)
    if info.fix:
        box.setInformativeText(f"Fix: {info.fix}")
    if info.details:
        box.setDetailedText(info.details)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box


def write_crash_log(text: str) -> str | None:
    try:

        p = cache_dir() / "crash.log"
        with open(p, "a", encoding="utf-8") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n{text}\n")
        return str(p)
    except OSError:
        return None


def install_excepthook() -> None:
    """Route uncaught exceptions (e.g. in a slot) to a dialog and the crash log instead of the console."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        if issubclass(etype, KeyboardInterrupt):
            previous(etype, value, tb)
            return
        text = "".join(traceback.format_exception(etype, value, tb))
        log = write_crash_log(text)
        app = QApplication.instance()
        if app is None:
            previous(etype, value, tb)
            return
        info = ErrorInfo.from_exception(value, "complete that action", text)
        if log:
            info.details = f"(also written to {log})\n\n{text}"
        handler = getattr(app, "qwb_error_handler", None)
        if callable(handler):
            handler(info)
        else:
            show_error_dialog(QApplication.activeWindow(), info)

    sys.excepthook = hook
