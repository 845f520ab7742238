"""Run by test_crash_restore in a child process: do some work in the real window, autosave, then die hard."""

from __future__ import annotations

import os
import sys
import time


def main() -> None:
    from ui.app import application
    from ui.main_window import MainWindow

    app = application()
    w = MainWindow()
    w.show()
    w.open_demo()
    deadline = time.monotonic() + 60
    while (not w.ws.runs or w.ctl.busy) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    node = w.ws.current_run.result.ranked("isolated")[0].node
    w.ws.set_precision([node], "fp32")
    w.autosave_now()
    print(node, flush=True)
    os._exit(3)  # a crash: no closeEvent, no cleanup


if __name__ == "__main__":
    sys.exit(main())
