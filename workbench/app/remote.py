"""The desktop app's heavy work runs in a child process that keeps the Session; this is that process.

Why a process and not a thread: model preparation, quantization and the diff engine spend long
stretches in C code that holds the GIL (protobuf parsing, session creation) or in pure Python, and a
GUI thread in the same process then waits for the GIL — measured on the MobileNetV2 benchmark during
one analysis: longest stall of a 5 ms timer 71-170 ms with a worker thread, 20-32 ms with this
process. It also means a crash inside onnxruntime ends this process, not the window and the user's work.

The child is ``python -m workbench.app.remote`` (not a ``multiprocessing`` spawn, which would re-import the
parent's ``__main__``); it connects back to the parent's ``multiprocessing.connection.Listener`` on the
loopback interface (Unix socket where available), authenticated with a key passed on stdin.

Protocol (everything pickled):
  parent -> child: ``(request_id, request)`` (a request of ``workbench.app.requests``, answered by its handler
                   in ``HANDLERS``), or the bare control messages ``CANCEL`` and ``EXIT``
  child -> parent: ``("progress", request_id, fraction, message)`` (with a fifth element, a partial result, when
                   the handler streams one: a tune run's verified points), then exactly one of
                   ``("done", request_id, result)``, ``("cancelled", request_id)``,
                   ``("error", request_id, info, traceback)``
A reader thread in the child receives while the main thread computes, so ``CANCEL`` sets an event that
the request's task checks between steps (``backends.tasks`` protocol).
"""

from __future__ import annotations

import os
import queue
import select
import sys
import threading
import time
import traceback
from multiprocessing.connection import AuthenticationError, Client, answer_challenge, deliver_challenge

from backends.child import exit_on_termination_signals

from ..errors import CancelledError, WorkbenchError
from .requests import EngineState, handle

PROGRESS_INTERVAL_S = 0.05
#: how long one connecting process may take to prove it holds the key (handshakes run side by side)
HANDSHAKE_S = 5.0
#: control messages from the parent (anything else it sends is ``(request_id, request)``)
CANCEL = "cancel"
EXIT = "exit"


class PipeTask:
    """The child's task: progress goes up the pipe (rate-limited); ``check`` raises when cancelled."""

    def __init__(self, conn, cancel_event, request_id: int):
        self.conn, self.cancel_event, self.request_id = conn, cancel_event, request_id
        self._last = 0.0
        self._fraction = 0.0

    def report(self, fraction: float, message: str = "") -> None:
        self._fraction = float(fraction)
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last = now
            self.conn.send(("progress", self.request_id, float(fraction), str(message)))

    def partial(self, payload, message: str = "") -> None:
        """Send a partial result (e.g. one verified tune point) now, never rate-limited: the GUI shows each one
        as it arrives."""
        self.conn.send(("progress", self.request_id, self._fraction, str(message), payload))

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise CancelledError()


def engine_command(address: str, family: str) -> tuple[list[str], dict]:
    """(argv, environment) that start this process for the GUI. ``-P``: no current folder on ``sys.path``, so
    a ``hmac.py`` (or any module name) in the folder ``qwb gui`` starts in is never imported; the child finds
    its packages through the absolute entries of the user's own ``PYTHONPATH`` (where factories live) and the
    folders the parent imports from. Empty and relative entries (``PYTHONPATH=.:``) are dropped: they name
    whatever folder the process starts in, which is the current folder again."""
    user = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.isabs(p)]
    inherited = [p for p in sys.path if p and os.path.isabs(p) and p not in user]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(user + inherited), PYTHONSAFEPATH="1")
    return [sys.executable, "-P", "-m", "workbench.app.remote", address, family], env


class _Deadlined:
    """A connection whose reads give up at ``deadline`` or once ``stop`` is set: a process that connects and never
    answers must not hold the listener (the challenge would wait for it forever)."""

    def __init__(self, conn, deadline: float, stop: threading.Event):
        self.conn, self.deadline, self.stop = conn, deadline, stop

    def send_bytes(self, buf) -> None:
        self.conn.send_bytes(buf)

    def recv_bytes(self, maxlength=None):
        while not self.conn.poll(min(0.1, max(0.0, self.deadline - time.monotonic()))):
            if self.stop.is_set() or time.monotonic() >= self.deadline:
                raise AuthenticationError("no answer to the challenge in time")
        return self.conn.recv_bytes(maxlength)


def accept_engine(listener, authkey: bytes, deadline: float):
    """The first connection on ``listener`` (a ``Listener`` made without an authkey) that proves it holds
    ``authkey``. Each connection's handshake runs in its own thread with its own ``HANDSHAKE_S`` limit while
    accepting goes on, so local processes that dial in first (silent, a wrong key, garbage) delay the engine
    by nothing; they are closed. TimeoutError at ``deadline`` (monotonic); OSError once the listener is closed."""
    won: queue.Queue = queue.Queue()
    stop = threading.Event()
    lock = threading.Lock()  # a handshake that succeeds as accepting ends is either returned or closed

    def handshake(conn) -> None:
        try:
            checked = _Deadlined(conn, min(deadline, time.monotonic() + HANDSHAKE_S), stop)
            deliver_challenge(checked, authkey)
            answer_challenge(checked, authkey)
        except (AuthenticationError, EOFError, OSError, ValueError):
            conn.close()
            return
        with lock:
            if stop.is_set():
                conn.close()
            else:
                won.put(conn)

    try:
        while True:
            try:
                return won.get_nowait()
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the engine process did not connect in time")
            inner = getattr(listener, "_listener", None)
            if inner is None:
                raise OSError("listener is closed")
            ready, _, _ = select.select([inner._socket], [], [], min(remaining, 0.05))
            if ready:
                conn = listener.accept()
                threading.Thread(target=handshake, args=(conn,), name="qwb-engine-handshake", daemon=True).start()
    finally:
        with lock:
            stop.set()
        while not won.empty():  # a second authenticated connection (none is expected): not the one returned
            won.get_nowait().close()


def error_info(e: BaseException) -> dict:
    """A picklable description of an exception (custom exception classes do not always unpickle)."""
    return {"type": type(e).__name__, "workbench": isinstance(e, WorkbenchError),
            "message": e.message if isinstance(e, WorkbenchError) else str(e),
            "fix": e.fix if isinstance(e, WorkbenchError) else None,
            "memory": isinstance(e, MemoryError)}


def rebuild_error(info: dict) -> BaseException:
    """The parent-side exception for ``error_info`` output."""
    if info.get("workbench"):
        return WorkbenchError(info["message"], info.get("fix"))
    if info.get("memory"):
        return MemoryError(info["message"])
    return RuntimeError(f"{info['type']}: {info['message']}")


def child_main(conn) -> None:
    """The child's loop: one request at a time until ``EXIT`` or the parent goes away."""

    cancel_event = threading.Event()
    inbox: queue.Queue = queue.Queue()

    def reader():
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                inbox.put(None)
                return
            if msg == CANCEL:
                cancel_event.set()
            elif msg == EXIT:
                cancel_event.set()
                inbox.put(None)
                return
            else:
                inbox.put(msg)

    threading.Thread(target=reader, name="qwb-engine-reader", daemon=True).start()
    state = EngineState()
    while True:
        msg = inbox.get()
        if msg is None:
            return
        request_id, request = msg
        cancel_event.clear()
        task = PipeTask(conn, cancel_event, request_id)
        try:
            result = handle(request, state, task)
            reply = ("done", request_id, result)
        except CancelledError:
            reply = ("cancelled", request_id)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never lost
            reply = ("error", request_id, error_info(e), traceback.format_exc())
        try:
            conn.send(reply)
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be pickled
            conn.send(("error", request_id, error_info(e), traceback.format_exc()))


def main() -> None:
    """Entry point of the child: ``python -m workbench.app.remote ADDRESS FAMILY`` with the auth key on stdin."""

    exit_on_termination_signals()  # the GUI's terminate() must still end a running benchmark's child
    family = sys.argv[2]
    address = sys.argv[1] if family == "AF_UNIX" else (sys.argv[1].rsplit(":", 1)[0], int(sys.argv[1].rsplit(":", 1)[1]))
    key = bytes.fromhex(sys.stdin.readline().strip())
    conn = Client(address, family=family, authkey=key)
    try:
        child_main(conn)
    finally:
        conn.close()


if __name__ == "__main__":
    # run the copy imported as ``workbench.app.remote``, so what it pickles names that module, not __main__
    from workbench.app.remote import main as _main

    _main()
