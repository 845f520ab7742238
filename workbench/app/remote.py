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
  parent -> child: ``(job_id, op, args)`` (op in ``HANDLERS``), ``(0, "cancel", ())``, ``(0, "exit", ())``
  child -> parent: ``("progress", job_id, fraction, message)``, then exactly one of
                   ``("done", job_id, result)``, ``("cancelled", job_id)``, ``("error", job_id, info, traceback)``
A reader thread in the child receives while the main thread computes, so "cancel" sets an event that
the job's task checks between steps (``analyzers.task`` protocol).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from ..errors import CancelledError, WorkbenchError

PROGRESS_INTERVAL_S = 0.05


class PipeTask:
    """The child's task: progress goes up the pipe (rate-limited); ``check`` raises when cancelled."""

    def __init__(self, conn, cancel_event, job_id: int):
        self.conn, self.cancel_event, self.job_id = conn, cancel_event, job_id
        self._last = 0.0

    def report(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last = now
            self.conn.send(("progress", self.job_id, float(fraction), str(message)))

    def check(self) -> None:
        if self.cancel_event.is_set():
            raise CancelledError()


@dataclass
class OpenedInfo:
    """What the GUI needs from an opened Session (the Session itself stays in the child).

    ``calibration`` arrives with a second job (``calibrate``), so the graph shows before the model has
    run over the calibration data.
    """

    source: str
    prepared_path: str
    graph: object  # workbench.graph.ModelGraph
    layout: object  # workbench.app.layout.GraphLayout
    calibration: object = None  # CalibrationData over packed histograms, once calibrated
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _open_model(state: dict, spec, recipe, task) -> OpenedInfo:
    """Prepare the model and bind the data (errors surface here); no calibration yet."""
    from . import jobs  # noqa: PLC0415

    state.pop("session", None)
    opened = jobs.open_model(spec, recipe, task, calibrate=False)
    s = opened.session
    state["session"] = s
    warnings = [w for w in (s.calib_data.warning, s.eval_data.warning if s.eval_data is not s.calib_data else None) if w]
    return OpenedInfo(s.prepared.source, str(s.prepared.path), s.graph, opened.layout, None,
                      list(s.prepared.notes), warnings)


def _calibrate(state: dict, task):
    """Collect (or load cached) histograms; the GUI gets them packed (``compact_hist``)."""
    from ..compact_hist import CompactHistograms, calibration_view  # noqa: PLC0415

    session = _session(state)
    cal = session.calibration(task)
    return calibration_view(CompactHistograms.pack(cal.histograms), cal.samples)


def _session(state: dict):
    session = state.get("session")
    if session is None:
        raise WorkbenchError("no model is loaded in the analysis process", "open the model again")
    return session


def _analyze(state: dict, recipe, samples, reservoir, task):
    from . import jobs  # noqa: PLC0415

    return jobs.analyze(_session(state), recipe, samples, reservoir, task=task)


def _call(state: dict, fn, args, task):
    return fn(*args, task=task)


HANDLERS = {"open_model": _open_model, "calibrate": _calibrate, "analyze": _analyze, "call": _call}


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
    """The child's loop: one job at a time until "exit" or the parent goes away."""
    import queue  # noqa: PLC0415
    import threading  # noqa: PLC0415

    cancel_event = threading.Event()
    jobs_q: queue.Queue = queue.Queue()

    def reader():
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                jobs_q.put(None)
                return
            if msg[1] == "cancel":
                cancel_event.set()
            elif msg[1] == "exit":
                cancel_event.set()
                jobs_q.put(None)
                return
            else:
                jobs_q.put(msg)

    threading.Thread(target=reader, name="qwb-engine-reader", daemon=True).start()
    state: dict = {}
    while True:
        msg = jobs_q.get()
        if msg is None:
            return
        job_id, op, args = msg
        cancel_event.clear()
        task = PipeTask(conn, cancel_event, job_id)
        try:
            result = HANDLERS[op](state, *args, task=task)
            reply = ("done", job_id, result)
        except CancelledError:
            reply = ("cancelled", job_id)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never lost
            reply = ("error", job_id, error_info(e), traceback.format_exc())
        try:
            conn.send(reply)
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as e:  # noqa: BLE001 - e.g. a result that cannot be pickled
            conn.send(("error", job_id, error_info(e), traceback.format_exc()))


def main() -> None:
    """Entry point of the child: ``python -m workbench.app.remote ADDRESS FAMILY`` with the auth key on stdin."""
    import sys  # noqa: PLC0415
    from multiprocessing.connection import Client  # noqa: PLC0415

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
