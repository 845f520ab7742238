"""Long work off the GUI thread, one job at a time (Orange3's TaskState + one-worker executor).

A job is a plain function ``fn(*args, task)``; ``task`` is a :class:`TaskState` whose ``report`` and
``check`` follow ``analyzers.task.Task``. Progress and the outcome come back through queued signals,
so widgets are only ever touched on the GUI thread, and progress is rate-limited so a chatty job can
not flood the event loop.
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from workbench.errors import CancelledError

PROGRESS_INTERVAL_S = 0.05


class TaskState(QObject):
    """Handed to a job: it reports progress and asks whether the user pressed Cancel."""

    sigProgress = Signal(float, str)

    def __init__(self) -> None:
        super().__init__()
        self._cancel = threading.Event()
        self._last = 0.0

    def report(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last = now
            self.sigProgress.emit(float(min(max(fraction, 0.0), 1.0)), message)

    def check(self) -> None:
        if self._cancel.is_set():
            raise CancelledError()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


@dataclass
class Job:
    """A scheduled job and, once done, its outcome (exactly one of result / error / cancelled)."""

    name: str
    state: TaskState
    on_done: Callable[["Job"], None] | None = None
    future: Future | None = None
    result: Any = None
    error: BaseException | None = None
    traceback: str = ""
    cancelled: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class JobRunner(QObject):
    """Runs one job at a time on a single worker thread and reports back on the GUI thread."""

    sigStarted = Signal(str)
    sigProgress = Signal(float, str)
    sigFinished = Signal(object)  # the Job (result, error or cancelled set)
    sigBusyChanged = Signal(bool)
    _sigDone = Signal(object)  # internal: emitted on the worker thread, delivered queued

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._executor: ThreadPoolExecutor | None = None
        self.job: Job | None = None
        self._sigDone.connect(self._on_done, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start(self, name: str, fn: Callable[..., Any], *args: Any,
              on_done: Callable[[Job], None] | None = None) -> Job:
        """Schedule ``fn(*args, task=state)``; refuses while another job runs (callers check ``busy``)."""
        if self.job is not None:
            raise RuntimeError(f"'{self.job.name}' is still running")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwb-worker")
        state = TaskState()
        state.sigProgress.connect(self.sigProgress, Qt.ConnectionType.QueuedConnection)
        job = Job(name, state, on_done)
        self.job = job

        def work():
            try:
                job.result = fn(*args, task=state)
            except CancelledError:
                job.cancelled = True
            except BaseException as e:  # noqa: BLE001 - every failure is reported, never lost on a thread
                job.error = e
                job.traceback = traceback.format_exc()
            finally:
                self._sigDone.emit(job)

        job.future = self._executor.submit(work)
        self.sigStarted.emit(name)
        self.sigBusyChanged.emit(True)
        return job

    def cancel(self) -> None:
        """Ask the running job to stop at its next ``check()``."""
        if self.job is not None:
            self.job.state.cancel()

    @Slot(object)
    def _on_done(self, job: Job) -> None:
        if job is not self.job:
            return
        if job.state.cancelled and job.error is None:
            job.cancelled = True
        self.job = None
        try:
            if job.on_done is not None:
                job.on_done(job)  # may start the next job (e.g. analyse after opening)
        finally:
            if self.job is None:
                self.sigBusyChanged.emit(False)
            self.sigFinished.emit(job)
            job.state.deleteLater()

    def shutdown(self, wait: bool = True) -> None:
        """Cancel the running job and stop the worker thread (the window calls this when it closes)."""
        self.cancel()
        ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=wait, cancel_futures=True)
        self.job = None
