"""Work started on a helper thread while this one waits on onnxruntime.

Building an analysis's sessions is single-threaded C++ that releases the GIL, so the second core sits idle for
it; numpy work that does not depend on those sessions (weight errors, the hints' range statistics) runs there
meanwhile. Written by hand: ``concurrent.futures`` gives the thread, not the rule for when numpy may use one.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")

#: set by ``scripts/emulate-x86-cpu``: the process runs on an emulated x86 CPU (QEMU user mode)
EMULATED_ENV = "QWB_EMULATED_X86_CPU"


def numpy_threads_safe() -> bool:
    """Whether numpy may run in a second thread beside this one: not under QEMU user mode, which crashed numpy
    running in two threads at once (a segfault in np.unique mid-suite, not reproducible alone); the emulated
    run checks integer kernels, not speed."""
    return not os.environ.get(EMULATED_ENV)


def alongside(fn: Callable[..., T], *args) -> Callable[[], T]:
    """``fn(*args)`` started on a helper thread; returns what collects its result (raising its error there).
    Run at once, on this thread, where ``numpy_threads_safe`` says no."""
    if not numpy_threads_safe():
        try:
            value = fn(*args)
        except Exception as e:  # noqa: BLE001 - raised where the result is collected, as the thread would
            err = e

            def failed() -> T:
                raise err
            return failed
        return lambda: value
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qwb-alongside")
    try:
        future = pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends once fn returns
    return future.result
