"""Long work off the GUI: one request at a time, in a child process that keeps the loaded model.

Orange3's TaskState + one-worker executor, with a process for the worker (see ``workbench.app.remote``
for why: the GIL). The GUI thread sends a request (``workbench.app.requests``), then polls the pipe every
few milliseconds while it runs; progress and the outcome become signals on the GUI thread, so only it
touches widgets. Cancel sets a shared event the request's handler checks between steps. If the child dies
(a crash inside onnxruntime), the call fails with a clear message, the window and the user's work stay,
and the next request starts a fresh child.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Listener
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.app.remote import CANCEL, EXIT, accept_engine, engine_command, rebuild_error
from workbench.errors import WorkbenchError

POLL_MS = 15
CONNECT_TIMEOUT_S = 60.0


class EngineCrashed(WorkbenchError):
    """The child process answering a request ended without answering."""


@dataclass
class EngineCall:
    """A request sent to the engine process and, once answered, its outcome (exactly one of
    result / error / cancelled). ``name`` is what the window shows while it runs."""

    name: str
    id: int
    request: Any = None
    on_done: Callable[["EngineCall"], None] | None = None
    on_partial: Callable[[Any], None] | None = None  # each partial result the request streams, as it arrives
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""
    cancelled: bool = False
    cancel_requested: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class EngineClient(QObject):
    """Sends requests (``workbench.app.requests``) to one long-lived engine process, one at a time."""

    sigStarted = Signal(str)
    sigProgress = Signal(float, str)
    sigPartial = Signal(object)  # a partial result the running request streamed (e.g. a verified tune point)
    sigFinished = Signal(object)  # the EngineCall
    sigBusyChanged = Signal(bool)
    sigEngineLost = Signal()  # the child died: whatever it held (the loaded model) is gone

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._proc: subprocess.Popen | None = None
        self._listener: Listener | None = None
        self._accepted: list = []
        self._conn = None
        self._outbox: list = []  # messages waiting for the child to connect
        self._spawned = 0.0
        self._next_id = 0
        self.call: EngineCall | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def busy(self) -> bool:
        return self.call is not None

    @property
    def engine_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self) -> None:
        """Start ``python -m workbench.app.remote``; it connects back while the GUI goes on (no blocking accept)."""
        self._teardown()
        family = "AF_UNIX" if hasattr(socket, "AF_UNIX") and sys.platform != "win32" else "AF_INET"
        key = os.urandom(32)
        # no authkey here: accept_engine checks it per connection, and keeps accepting past wrong ones
        listener = Listener(address=None if family == "AF_UNIX" else ("127.0.0.1", 0), family=family)
        addr = listener.address if family == "AF_UNIX" else f"{listener.address[0]}:{listener.address[1]}"
        argv, env = engine_command(addr, family)
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env)
        self._proc.stdin.write(key.hex().encode() + b"\n")
        self._proc.stdin.close()
        self._listener, self._accepted, self._spawned = listener, [], time.monotonic()
        deadline = self._spawned + CONNECT_TIMEOUT_S

        def accept(listener=listener, box=self._accepted):
            try:
                box.append(accept_engine(listener, key, deadline))
            except BaseException as e:  # noqa: BLE001 - closed listener, no engine in time: reported by _poll
                box.append(e)

        threading.Thread(target=accept, name="qwb-engine-accept", daemon=True).start()

    def _send(self, msg) -> None:
        if self._conn is not None:
            self._conn.send(msg)
        else:
            self._outbox.append(msg)

    def start(self, name: str, request: Any, on_done: Callable[[EngineCall], None] | None = None,
              on_partial: Callable[[Any], None] | None = None) -> EngineCall:
        """Send ``request`` (answered by its handler in ``workbench.app.requests.HANDLERS``) to the child;
        refuses while busy. ``on_partial`` gets each partial result the handler streams (``PipeTask.partial``)."""
        if self.call is not None:
            raise RuntimeError(f"'{self.call.name}' is still running")
        if not self.engine_alive:
            self._spawn()
        self._next_id += 1
        call = EngineCall(name, self._next_id, request, on_done, on_partial)
        self.call = call
        self._send((call.id, request))
        self._timer.start()
        self.sigStarted.emit(name)
        self.sigBusyChanged.emit(True)
        return call

    def cancel(self) -> None:
        """Ask the running request to stop at its next check."""
        if self.call is not None:
            self.call.cancel_requested = True
            try:
                self._send(CANCEL)
            except (OSError, BrokenPipeError):
                pass

    def _connect(self) -> bool:
        """Pick up the child's connection once it has dialled in; flush what waited for it."""
        if self._conn is not None:
            return True
        if not self._accepted:
            return False
        got = self._accepted[0]
        if isinstance(got, BaseException):
            return False
        self._conn = got
        self._listener.close()
        self._listener = None
        for msg in self._outbox:
            self._conn.send(msg)
        self._outbox.clear()
        return True

    def _poll(self) -> None:
        call = self.call
        if call is None:
            self._timer.stop()
            return
        connected = self._connect()
        try:
            while connected and self._conn.poll():
                msg = self._conn.recv()
                if msg[0] == "progress":
                    if msg[1] == call.id:
                        self.sigProgress.emit(msg[2], msg[3])
                        if len(msg) > 4:
                            if call.on_partial is not None:
                                call.on_partial(msg[4])
                            self.sigPartial.emit(msg[4])
                    continue
                if msg[1] != call.id:
                    continue
                if msg[0] == "done":
                    call.result = msg[2]
                elif msg[0] == "cancelled":
                    call.cancelled = True
                else:
                    call.error, call.traceback = rebuild_error(msg[2]), msg[3]
                self._finish(call)
                return
        except (EOFError, OSError, BrokenPipeError):
            pass
        except Exception as e:  # noqa: BLE001 - a reply that cannot be unpickled: a bug, reported as such

            call.error, call.traceback = e, traceback.format_exc()
            self._finish(call)
            return
        timed_out = not connected and time.monotonic() - self._spawned > CONNECT_TIMEOUT_S
        if not self.engine_alive or timed_out:
            code = self._proc.poll() if self._proc is not None else None
            call.error = EngineCrashed(
                f"the analysis process stopped unexpectedly (exit code {code}) while {call.name.lower()}",
                "your recipe, edits and earlier runs are kept; Re-run (F5) reloads the model and goes on")
            self._teardown()
            self.sigEngineLost.emit()
            self._finish(call)

    def _finish(self, call: EngineCall) -> None:
        self.call = None
        self._timer.stop()
        try:
            if call.on_done is not None:
                call.on_done(call)  # may start the next request (e.g. analyse after opening)
        finally:
            if self.call is None:
                self.sigBusyChanged.emit(False)
            self.sigFinished.emit(call)

    def _teardown(self, timeout: float = 5.0) -> None:
        proc, conn, listener = self._proc, self._conn, self._listener
        self._proc = self._conn = self._listener = None
        self._outbox.clear()
        if conn is not None:
            try:
                conn.send(EXIT)
            except (OSError, BrokenPipeError):
                pass
        if listener is not None:  # wake a pending accept (close alone does not on Linux), then close
            sock = getattr(getattr(listener, "_listener", None), "_socket", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(2.0)
        if conn is not None:
            conn.close()

    def shutdown(self) -> None:
        """Cancel the running request and end the child (the window calls this when it closes)."""
        self.cancel()
        self._timer.stop()
        self.call = None
        self._teardown()
