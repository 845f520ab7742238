"""Run backend work in a child process with a time limit, so a crash or hang never takes the caller down.

onnxruntime kernels are native code: a segfault or a deadlock in one would kill or freeze the GUI if it
ran in-process. The child prints JSON progress lines on stdout; this module relays them to the task,
polls ``task.check()`` for cancellation, kills the child's whole process group on timeout or cancel,
and turns a signal, a timeout or an exit code into a plain sentence. ``subprocess.run`` alone cannot
relay progress or be cancelled, hence the small polling loop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass

from .tasks import NullTask, Task


@dataclass
class ChildOutcome:
    """How a child process ended, and the last thing it said it was doing."""

    returncode: int | None
    timed_out: bool
    elapsed_s: float
    last_message: str
    stderr_tail: str
    stdout_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self, what: str, timeout_s: float) -> str:
        """One sentence for the user: crashed with which signal, hung, or exited with which code."""
        where = f" while {self.last_message}" if self.last_message else ""
        if self.timed_out:
            return f"{what} did not finish within {timeout_s:g} s (hung{where}); it was stopped"
        rc = self.returncode
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"{what} crashed with {name} (signal {-rc}){where}"
        tail = self.stderr_tail.strip().splitlines()[-1:] or [""]
        return f"{what} failed (exit code {rc}){where}" + (f": {tail[0]}" if tail[0] else "")


class ChildFailure(Exception):
    """A child process crashed, hung or failed; ``outcome`` has the details."""

    def __init__(self, message: str, outcome: ChildOutcome | None = None):
        super().__init__(message)
        self.message = message
        self.outcome = outcome


def exit_on_termination_signals() -> None:
    """Make SIGTERM and SIGHUP (a closed terminal) end this process as Ctrl+C does, by an exception that
    unwinds the stack: ``run_child`` then kills the benchmark child's process group and temporary folders are
    removed, where the default action would end this process at once and leave both behind. Main thread only."""
    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, terminate)


def _pump(stream, sink: deque, on_line=None) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)
        if on_line:
            on_line(line)
    stream.close()


def run_child(cmd: list[str], *, timeout_s: float, task: Task | None = None, env: dict | None = None,
              cwd: str | None = None, poll_s: float = 0.05) -> ChildOutcome:
    """Run ``cmd`` to the end, the time limit, or the task's cancellation (which is re-raised)."""
    task = task or NullTask()
    progress = {"fraction": 0.0, "message": "", "dirty": False}

    def on_line(line: str) -> None:
        if line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError:
                return
            if "progress" in msg:
                progress.update(fraction=float(msg["progress"]), message=str(msg.get("message", "")), dirty=True)

    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, cwd=cwd, start_new_session=True, errors="replace")
    out_tail: deque = deque(maxlen=200)
    err_tail: deque = deque(maxlen=200)
    readers = [threading.Thread(target=_pump, args=(p.stdout, out_tail, on_line), daemon=True),
               threading.Thread(target=_pump, args=(p.stderr, err_tail), daemon=True)]
    for r in readers:
        r.start()
    timed_out = False
    try:
        while True:
            try:
                p.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if progress["dirty"]:
                progress["dirty"] = False
                task.report(progress["fraction"], progress["message"])
            if time.perf_counter() - t0 > timeout_s:
                timed_out = True
                _kill(p)
                break
            task.check()
    except BaseException:
        _kill(p)  # cancelled (or interrupted): never leave the child running
        raise
    finally:
        for r in readers:
            r.join(timeout=5)
    return ChildOutcome(p.returncode, timed_out, time.perf_counter() - t0, progress["message"],
                        "".join(err_tail)[-4000:], "".join(out_tail)[-4000:])


def _kill(p: subprocess.Popen) -> None:
    """Kill the child and anything it started (it leads its own process group), then reap it."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            p.kill()
    p.wait()
