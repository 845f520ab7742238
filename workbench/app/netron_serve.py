"""Serve a model to Netron on 127.0.0.1 only, for the GUI's "Open in Netron".

Netron shows every attribute and shape of a model; rather than re-implementing that, the GUI serves
Netron's page (the files of the ``netron`` package) and the model on the loopback interface and shows it
in an embedded browser, or in the system browser. A page on the web can still reach 127.0.0.1 through a
DNS name it rebinds there, so the server answers only requests whose ``Host`` is ``127.0.0.1:PORT`` or
``localhost:PORT``, and only under an unguessable path; it serves the model file and its external weights
(plain files beside it), nothing else from that folder and nothing deeper. Serving is a daemon thread inside this process; ``stop`` ends it (the GUI calls it when the tab or
the window closes).
"""

from __future__ import annotations

import html
import http.server
import os
import re
import secrets
import stat
import threading
import urllib.parse
from pathlib import Path

import netron

from ..errors import WorkbenchError
from ..safe_paths import external_data_files

HOST = "127.0.0.1"
NETRON_DIR = Path(netron.__file__).resolve().parent
MIME = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".png": "image/png",
        ".ico": "image/x-icon", ".json": "application/json", ".svg": "image/svg+xml", ".ttf": "font/ttf",
        ".woff": "font/woff", ".woff2": "font/woff2"}

_servers: dict[tuple[str, int], tuple[http.server.ThreadingHTTPServer, threading.Thread]] = {}


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        host = self.headers.get("Host", "")
        port = self.server.server_address[1]
        if host not in (f"{HOST}:{port}", f"localhost:{port}"):
            return self._send(421, "text/plain", b"wrong Host")
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
        prefix = f"/{self.server.token}/"
        if not path.startswith(prefix):
            return self._send(404, "text/plain", b"not found")
        rest = path[len(prefix):] or "index.html"
        if rest.startswith("data/"):
            body = self.server.read_data(rest[len("data/"):])
            return self._send(200, "application/octet-stream", body) if body is not None else \
                self._send(404, "text/plain", b"not found")
        if "/" in rest or rest.startswith(".") or Path(rest).suffix not in MIME:
            return self._send(404, "text/plain", b"not found")
        file = NETRON_DIR / rest
        if not file.is_file():
            return self._send(404, "text/plain", b"not found")
        body = file.read_bytes()
        if rest == "index.html":
            meta = (f'<meta name="type" content="Python">\n<meta name="version" content="{netron.__version__}">\n'
                    f'<meta name="file" content="{prefix}data/{html.escape(self.server.model.name)}">')
            body = re.sub(rb'<meta name="version" content=".*">', lambda _: meta.encode(), body)
        self._send(200, MIME[Path(rest).suffix], body)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self.do_GET()

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # noqa: A002 - http.server's signature
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: Path):
        super().__init__((HOST, 0), _Handler)
        self.model, self.token = model, secrets.token_urlsafe(24)
        #: what Netron may fetch: the model and the files its weights are in (not the data or other files beside it)
        self.files = {model.name} | {p.name for p in external_data_files(model) if p.parent == model.parent}

    def read_data(self, name: str) -> bytes | None:
        """The model or one of its external weight files (plain files beside it), nothing else."""
        if name not in self.files or "/" in name or "\\" in name or name.startswith("."):
            return None
        path = self.model.parent / name
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return None
            return path.read_bytes()
        except OSError:
            return None


def serve(path: str | Path) -> tuple[str, tuple[str, int]]:
    """Start serving ``path``; returns (url, address). The url holds the unguessable path."""
    path = Path(path).resolve()
    if not path.is_file():
        raise WorkbenchError(f"model file not found: {path}", "reopen the model")
    try:
        server = _Server(path)
    except OSError as e:
        raise WorkbenchError(f"could not start Netron's local server: {e}", "try again; check that 127.0.0.1 works") from e
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
                              name="qwb-netron")
    thread.start()
    address = server.server_address[:2]
    _servers[address] = (server, thread)
    return f"http://{HOST}:{address[1]}/{server.token}/", address


def stop(address: tuple[str, int]) -> None:
    """Stop serving at ``address`` and wait for the server thread to end."""
    entry = _servers.pop(tuple(address), None)
    if entry is None:
        return
    server, thread = entry
    server.shutdown()
    server.server_close()
    thread.join(timeout=2.0)
