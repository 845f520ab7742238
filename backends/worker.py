"""The child process that loads and times models: ``python worker.py REQUEST.json``.

It runs natively for the cpu/cuda/neon backends and under QEMU inside the ARM64 sysroot for
neon-emulated, so it needs nothing but the standard library, numpy and onnxruntime (``runner.py`` is
loaded by file path for the same reason: the sysroot has no Quant Workbench installed). It reports
progress as JSON lines on stdout and writes its results to the JSON file the request names.

Jobs:
- ``bench``: warm-up, then ``runs`` timed runs at each batch size; per-run seconds, the outputs of the
  first batch, and this process's peak resident memory.
- ``inspect``: the outputs at full optimization (what the device computes), and optionally the graph
  onnxruntime optimizes to at the 'extended' level plus its profile (for INT8 coverage).
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import platform
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np


def _load_runner():
    spec = importlib.util.spec_from_file_location("qwb_backend_runner", Path(__file__).with_name("runner.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while building the class
    spec.loader.exec_module(mod)
    return mod


def exit_with_parent(poll_s: float = 0.5) -> None:
    """End this process when the one that started it is gone (killed with no chance to end it first), so a
    benchmark never goes on running, and holding its files, as an orphan."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="qwb-parent-watch", daemon=True).start()


def progress(fraction: float, message: str) -> None:
    """One JSON line on stdout: the parent relays it to the task and quotes it if this process dies."""
    print(json.dumps({"progress": round(fraction, 4), "message": message}), flush=True)


def make_feed(pool: dict, batch_axis: dict, batch: int) -> dict:
    """``batch`` samples from the pool (cycled when the pool is smaller) for each input."""

    feed = {}
    for name, arr in pool.items():
        if batch_axis.get(name, False):
            feed[name] = np.ascontiguousarray(arr[np.arange(batch) % arr.shape[0]])
        else:
            feed[name] = arr
    return feed


def save_outputs(path: str, outputs) -> None:
    """Outputs as arr_0, arr_1, ... (names can hold characters a zip member name should not)."""

    np.savez(path, *[np.asarray(o) for o in outputs])


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory (why each model is timed in its own process)."""
    try:
        import resource  # noqa: PLC0415 - Unix only

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    except Exception:  # noqa: BLE001
        return None


def arm_features() -> list[str] | None:
    """The ARM64 features the kernel (or QEMU) reports through getauxval: what onnxruntime dispatches on."""
    if platform.machine().lower() not in ("aarch64", "arm64"):
        return None
    try:

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
        hwcap, hwcap2 = getauxval(16), getauxval(26)  # AT_HWCAP, AT_HWCAP2
    except (OSError, AttributeError):
        return None
    bits = [("asimd", hwcap, 1), ("asimddp", hwcap, 20), ("sve", hwcap, 22), ("sve2", hwcap2, 1),
            ("i8mm", hwcap2, 13), ("bf16", hwcap2, 14)]  # linux/arch/arm64/include/uapi/asm/hwcap.h
    return [name for name, word, bit in bits if word & (1 << bit)]


def bench(job: dict, pool: dict, batch_axis: dict, runner_mod, lo: float, hi: float) -> dict:
    """Warm-up and timed runs per batch size; the timed region is the runner's infer() alone."""
    cfg = runner_mod.SessionConfig(**job["config"])
    label, runs, warmup, batches = job["label"], int(job["runs"]), int(job["warmup"]), job["batches"]
    progress(lo, f"loading {label}")
    runner = runner_mod.OnnxRuntimeRunner(cfg)
    runner.activate()
    result = {"label": label, "providers_used": runner.providers_used, "init_s": runner.init_seconds,
              "timings": {}, "output_names": [o.name for o in runner.session.get_outputs()]}
    step = (hi - lo) / max(len(batches), 1)
    for k, b in enumerate(batches):
        feed = make_feed(pool, batch_axis, int(b))
        progress(lo + step * k, f"warming up {label} at batch {b}")
        for _ in range(warmup):
            runner.infer(feed)
        progress(lo + step * (k + 0.2), f"timing {label} at batch {b} ({runs} runs)")
        times = [0.0] * runs
        for i in range(runs):
            out = runner.infer(feed)
            times[i] = runner.last_inference_time
        result["timings"][str(b)] = times
        if k == 0:
            save_outputs(job["outputs"], out)
            result["outputs"] = job["outputs"]
    runner.deactivate()
    result["peak_rss_bytes"] = peak_rss_bytes()
    return result


def inspect(job: dict, pool: dict, batch_axis: dict, runner_mod, lo: float, hi: float) -> dict:
    """Outputs at full optimization, plus (for coverage) the extended-level graph and its profile."""
    label = job["label"]
    feed = make_feed(pool, batch_axis, int(job.get("batch", 1)))
    progress(lo, f"running {label}")
    cfg = runner_mod.SessionConfig(**job["config"])
    with runner_mod.OnnxRuntimeRunner(cfg) as r:
        out = r.infer(feed)
        result = {"label": label, "providers_used": r.providers_used, "init_s": r.init_seconds,
                  "output_names": [o.name for o in r.session.get_outputs()]}
    save_outputs(job["outputs"], out)
    result["outputs"] = job["outputs"]
    cov = job.get("coverage")
    if cov:
        progress((lo + hi) / 2, f"reading onnxruntime's optimized graph of {label}")
        c = dict(job["config"], level="extended", optimized_model_path=cov["optimized_model_path"],
                 profile_prefix=cov["profile_prefix"])
        with runner_mod.OnnxRuntimeRunner(runner_mod.SessionConfig(**c)) as r:
            r.infer(feed)
            result["profile"] = r.end_profiling()
            result["coverage_providers_used"] = r.providers_used
        result["optimized_model"] = cov["optimized_model_path"]
    return result


def main(argv: list[str]) -> int:
    """Run the request's jobs; errors become data in the result file (exit 3), crashes speak for themselves."""
    exit_with_parent()
    request_path = argv[1]
    with open(request_path, encoding="utf-8") as f:
        req = json.load(f)
    results = {"jobs": [], "error": None, "machine": platform.machine(), "python": platform.python_version(),
               "pid": os.getpid(), "arm_features": arm_features()}
    try:
        runner_mod = _load_runner()
        progress(0.0, "importing onnxruntime")
        import numpy as np  # noqa: PLC0415 - inside the try: a broken install is reported in the results JSON
        import onnxruntime  # noqa: PLC0415 - (the same; under QEMU it also takes 1.4 s, shown as progress)

        results["onnxruntime"] = onnxruntime.__version__
        with np.load(req["feed"]) as z:
            pool = {k: z[k] for k in z.files}
        jobs = req["jobs"]
        for k, job in enumerate(jobs):
            lo, hi = 0.05 + 0.95 * k / len(jobs), 0.05 + 0.95 * (k + 1) / len(jobs)
            fn = {"bench": bench, "inspect": inspect}[job["kind"]]
            t0 = time.perf_counter()
            res = fn(job, pool, req.get("batch_axis", {}), runner_mod, lo, hi)
            res["wall_s"] = time.perf_counter() - t0
            results["jobs"].append(res)
        progress(1.0, "done")
        code = 0
    except Exception as e:  # noqa: BLE001 - reported to the parent as data, not as a crash
        results["error"] = f"{type(e).__name__}: {e}"
        results["traceback"] = traceback.format_exc()[-3000:]
        code = 3
    tmp = req["result"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(results, f)
    os.replace(tmp, req["result"])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
