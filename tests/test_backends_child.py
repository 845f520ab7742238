"""A backend that crashes or hangs is reported in one sentence, and the caller carries on."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import psutil
import pytest

import resources
from backends.benchmark import BenchSettings, benchmark
from backends.child import run_child
from backends.cpu import CpuBackend
from backends.feeds import Feed

SEGFAULT = "import ctypes; ctypes.string_at(0)"
PROGRESS = "import json; print(json.dumps({'progress': 0.3, 'message': 'loading fp32'}), flush=True); "


class Cancelled(Exception):
    pass


class CancelAfter:
    """A task whose user presses Cancel after ``n`` checks."""

    def __init__(self, n: int):
        self.n, self.reports = n, []

    def report(self, fraction, message=""):
        self.reports.append((fraction, message))

    def check(self):
        self.n -= 1
        if self.n < 0:
            raise Cancelled()


class FaultyBackend(CpuBackend):
    """The CPU backend, except that its child process runs ``code`` instead of the worker."""

    name = "faulty"

    def __init__(self, code: str):
        super().__init__()
        self.code = code

    def command(self, request_path):
        return [sys.executable, "-c", self.code], dict(os.environ)


def demo_feed() -> Feed:
    with np.load(resources.DEMO_CALIB) as z:
        return Feed({"image": z["image"][:8]}, {"image": True}, "demo")


def test_segfault_is_reported_with_signal_and_phase():
    out = run_child([sys.executable, "-c", PROGRESS + SEGFAULT], timeout_s=60)
    assert out.returncode == -11 and not out.timed_out
    assert out.describe("the cpu benchmark", 60) == "the cpu benchmark crashed with SIGSEGV (signal 11) while loading fp32"


def test_abort_is_reported():
    out = run_child([sys.executable, "-c", "import os; os.abort()"], timeout_s=60)
    assert "crashed with SIGABRT (signal 6)" in out.describe("x", 60)


def test_hang_is_stopped_at_the_timeout():
    t0 = time.perf_counter()
    out = run_child([sys.executable, "-c", PROGRESS + "import time; time.sleep(600)"], timeout_s=1.5)
    assert time.perf_counter() - t0 < 30
    assert out.timed_out
    assert out.describe("the cpu benchmark", 1.5) == ("the cpu benchmark did not finish within 1.5 s (hung while "
                                                      "loading fp32); it was stopped")


def test_failed_exit_code_shows_the_last_error_line():
    out = run_child([sys.executable, "-c", "import sys; sys.exit('no such kernel')"], timeout_s=60)
    assert out.describe("x", 60) == "x failed (exit code 1): no such kernel"


def test_cancel_kills_the_child_and_propagates():
    task = CancelAfter(3)
    t0 = time.perf_counter()
    with pytest.raises(Cancelled):
        run_child([sys.executable, "-c", "import time; time.sleep(600)"], timeout_s=600, task=task)
    assert time.perf_counter() - t0 < 30
    assert not [c for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]


def test_crashing_backend_is_a_result_and_the_next_backend_still_runs():
    feed = demo_feed()
    settings = BenchSettings(threads=1, runs=5, warmup=1, timeout_s=60)
    bad = benchmark(FaultyBackend(PROGRESS + SEGFAULT), resources.DEMO_MODEL, resources.DEMO_MODEL, feed, settings)
    assert bad.fp32.latency is None and bad.int8.latency is None
    assert "crashed with SIGSEGV (signal 11) while loading fp32" in bad.fp32.failure
    assert "benchmark of fp32" in bad.fp32.failure and "digits_cnn.onnx" in bad.fp32.failure
    assert "SIGSEGV" in bad.coverage_failure
    d = bad.to_dict()
    assert d["fp32"] is None and d["speedup"] is None and "SIGSEGV" in d["failures"]["fp32"]
    good = benchmark(CpuBackend(), resources.DEMO_MODEL, None, feed, settings)
    assert good.fp32.failure is None and good.fp32.latency.runs == 5


def test_hanging_backend_is_a_result():
    settings = BenchSettings(threads=1, runs=5, warmup=1, timeout_s=1.0)
    r = benchmark(FaultyBackend(PROGRESS + "import time; time.sleep(600)"), resources.DEMO_MODEL, None, demo_feed(),
                  settings)
    assert "did not finish within 1 s (hung while loading fp32)" in r.fp32.failure


def test_onnxruntime_error_in_the_child_is_a_result(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(resources.DEMO_MODEL.read_bytes()[:2000])  # truncated protobuf
    settings = BenchSettings(threads=1, runs=5, warmup=1, timeout_s=60)
    r = benchmark(CpuBackend(), resources.DEMO_MODEL, broken, demo_feed(), settings)
    assert r.fp32.latency is not None and r.int8.latency is None
    assert "the cpu benchmark of int8 (broken.onnx): onnxruntime failed:" in r.int8.failure
    assert r.speedup is None and r.coverage is None and "onnxruntime failed" in r.coverage_failure
