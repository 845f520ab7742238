"""Netron inside the window (QtWebEngine) or in the system browser, serving the model on 127.0.0.1.

Netron's page asks for cookie consent (and looks up the visitor's country online) unless a
``consent`` cookie exists, so the embedded profile gets that cookie before the page loads: the page
then makes no request beyond 127.0.0.1.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QDateTime, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtNetwork import QNetworkCookie
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from workbench.app import netron_serve


def webengine_available() -> bool:
    try:
        from PySide6.QtWebEngineWidgets import QWebEngineView  # noqa: F401, PLC0415 - optional (+265 MB): probe only
    except ImportError:
        return False
    return True


class NetronServer:
    """One served model; ``stop`` is idempotent."""

    def __init__(self, path: str):
        self.path = path
        self.url, self.address = netron_serve.serve(path)

    def stop(self) -> None:
        if self.address is not None:
            netron_serve.stop(self.address)
            self.address = None


class NetronTab(QWidget):
    """An embedded Netron page for one model (create only when QtWebEngine is available)."""

    def __init__(self, server: NetronServer, parent=None):
        super().__init__(parent)
        from PySide6.QtWebEngineCore import QWebEngineProfile  # noqa: PLC0415 - optional QtWebEngine (+265 MB)
        from PySide6.QtWebEngineWidgets import QWebEngineView  # noqa: PLC0415 - optional QtWebEngine (+265 MB)

        self.server = server
        self.view = QWebEngineView(self)
        profile: QWebEngineProfile = self.view.page().profile()
        cookie = QNetworkCookie(b"consent", str(int(time.time() * 1000)).encode())
        cookie.setDomain("127.0.0.1")
        cookie.setPath("/")
        cookie.setExpirationDate(QDateTime.currentDateTime().addDays(30))
        profile.cookieStore().setCookie(cookie, QUrl(server.url))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        note = QLabel(f"Netron, serving {server.path} at {server.url} (this computer only)")
        note.setStyleSheet("color:#5f6b78; padding:2px 6px;")
        lay.addWidget(note)
        lay.addWidget(self.view, 1)
        self.view.load(QUrl(server.url))

    def close_server(self) -> None:
        self.view.setUrl(QUrl("about:blank"))
        self.server.stop()


def open_in_browser(server: NetronServer) -> bool:
    return QDesktopServices.openUrl(QUrl(server.url))
