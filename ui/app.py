"""Start the desktop app: one QApplication, the exception hook, the main window, crash recovery."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import resources
from workbench.session import SessionSpec

from .errors import install_excepthook
from .main_window import MainWindow
from .settings import APP, ORG


def application(argv: list[str] | None = None) -> QApplication:
    """The running QApplication, created on first use with the app's names."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setOrganizationName(ORG)
        app.setApplicationName(APP)
        app.setApplicationDisplayName(APP)
    return app


def run(model: str | None = None, calib: str | None = None, eval: str | None = None, recipe: str | None = None,
        demo: bool = False, exec_loop: bool = True) -> int:
    """Open the window (optionally on a model, a project or the demo) and run the event loop."""

    app = application()
    install_excepthook()
    w = MainWindow()
    app.qwb_error_handler = w.show_error
    w.show()

    def start():
        restored = w.check_crash_restore()
        if restored:
            return
        if demo:

            w.open_spec(SessionSpec(model or str(resources.DEMO_MODEL), calib or str(resources.DEMO_CALIB),
                                    eval or str(resources.DEMO_EVAL), recipe))
        elif model and calib:
            w.open_spec(SessionSpec(model, calib, eval, recipe))
        elif model:
            w.open_path(model)

    QTimer.singleShot(0, start)
    return app.exec() if exec_loop else 0
