"""Long work off the GUI: one job at a time, in a child process that keeps the loaded model.

Orange3's TaskState + one-worker executor, with a process for the worker (see ``workbench.remote``
for why: the GIL). The GUI thread sends a job, then polls the pipe every few milliseconds while it
runs; progress and the outcome become signals on the GUI thread, so only it touches widgets. Cancel
sets a shared event the job checks between steps. If the child dies (a crash inside onnxruntime),
the job fails with a clear message, the window and the user's work stay, and the next job starts a
fresh child.
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from workbench.errors import WorkbenchError
from workbench.remote import child_main, rebuild_error

POLL_MS = 15


class EngineCrashed(WorkbenchError):
    """The child process running the job ended without answering."""


@dataclass
class Job:
    """A submitted job and, once done, its outcome (exactly one of result / error / cancelled)."""

    name: str
    id: int
    on_done: Callable[["Job"], None] | None = None
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""
    cancelled: bool = False
    cancel_requested: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class JobRunner(QObject):
    """Runs ``workbench.remote`` operations in one long-lived child process, one at a time."""

    sigStarted = Signal(str)
    sigProgress = Signal(float, str)
    sigFinished = Signal(object)  # the Job
    sigBusyChanged = Signal(bool)
    sigEngineLost = Signal()  # the child died: whatever it held (the loaded model) is gone

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._conn = None
        self._cancel = None
        self._next_id = 0
        self.job: Job | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def busy(self) -> bool:
        return self.job is not None

    @property
    def engine_alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _ensure_child(self) -> None:
        if self.engine_alive:
            return
        self._teardown()
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        self._cancel = self._ctx.Event()
        self._proc = self._ctx.Process(target=child_main, args=(child_conn, self._cancel), name="qwb-engine",
                                       daemon=True)
        self._proc.start()
        child_conn.close()
        self._conn = parent_conn

    def start(self, name: str, op: str, *args: Any, on_done: Callable[[Job], None] | None = None) -> Job:
        """Send ``op(*args)`` (see ``workbench.remote.HANDLERS``) to the child; refuses while busy."""
        if self.job is not None:
            raise RuntimeError(f"'{self.job.name}' is still running")
        self._ensure_child()
        self._cancel.clear()
        self._next_id += 1
        job = Job(name, self._next_id, on_done)
        self.job = job
        self._conn.send((job.id, op, args))
        self._timer.start()
        self.sigStarted.emit(name)
        self.sigBusyChanged.emit(True)
        return job

    def cancel(self) -> None:
        """Ask the running job to stop at its next check."""
        if self.job is not None and self._cancel is not None:
            self.job.cancel_requested = True
            self._cancel.set()

    def _poll(self) -> None:
        job = self.job
        if job is None:
            self._timer.stop()
            return
        try:
            while self._conn.poll():
                msg = self._conn.recv()
                if msg[0] == "progress":
                    if msg[1] == job.id:
                        self.sigProgress.emit(msg[2], msg[3])
                    continue
                if msg[1] != job.id:
                    continue
                if msg[0] == "done":
                    job.result = msg[2]
                elif msg[0] == "cancelled":
                    job.cancelled = True
                else:
                    job.error, job.traceback = rebuild_error(msg[2]), msg[3]
                self._finish(job)
                return
        except (EOFError, OSError, BrokenPipeError):
            pass
        if not self.engine_alive:
            code = self._proc.exitcode if self._proc is not None else None
            job.error = EngineCrashed(
                f"the analysis process stopped unexpectedly (exit code {code}) while {job.name.lower()}",
                "your recipe, edits and earlier runs are kept; Re-run (F5) reloads the model and goes on")
            self._teardown()
            self.sigEngineLost.emit()
            self._finish(job)

    def _finish(self, job: Job) -> None:
        self.job = None
        self._timer.stop()
        try:
            if job.on_done is not None:
                job.on_done(job)  # may start the next job (e.g. analyse after opening)
        finally:
            if self.job is None:
                self.sigBusyChanged.emit(False)
            self.sigFinished.emit(job)

    def _teardown(self, timeout: float = 5.0) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            try:
                conn.send((0, "exit", ()))
            except (OSError, BrokenPipeError):
                pass
        if proc is not None:
            proc.join(timeout)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)
        if conn is not None:
            conn.close()

    def shutdown(self) -> None:
        """Cancel the running job and end the child (the window calls this when it closes)."""
        self.cancel()
        self._timer.stop()
        self.job = None
        self._teardown()
