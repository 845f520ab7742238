"""Where candidate evaluations run: this process, local worker processes, or Ray tasks on a cluster.

All three take a batch of (recipe, part) jobs and yield ``EvalResult``s as they finish, so the search streams
points to its caller (console, GUI) in completion order and can stop between any two.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import signal
from dataclasses import replace

from ..errors import WorkbenchError
from .evaluator import EvalContext, EvalResult, evaluate

_CTX: EvalContext | None = None  # a local worker's context, set once by its initializer


def _init_worker(ctx: EvalContext) -> None:
    global _CTX
    _CTX = ctx
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the search, keeps the points


def _worker_eval(recipe_dict: dict, part: str) -> EvalResult:
    return evaluate(_CTX, recipe_dict, part)


class InlinePool:
    """Evaluations one after another in this process (one worker, and tests)."""

    description = "this process"

    def __init__(self, ctx: EvalContext):
        self.ctx = ctx

    def run(self, jobs: list[tuple[dict, str]], check=lambda: None):
        for recipe, part in jobs:
            check()
            yield evaluate(self.ctx, recipe, part)

    def close(self) -> None:
        pass


class LocalPool:
    """Worker processes on this machine, one onnxruntime thread each; the context is sent once per worker."""

    def __init__(self, ctx: EvalContext, workers: int):
        self.workers = workers
        self.description = f"{workers} local worker processes"
        ctx = replace(ctx, threads=1)
        self.ex = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(ctx,))

    def run(self, jobs: list[tuple[dict, str]], check=lambda: None):
        futures = [self.ex.submit(_worker_eval, r, p) for r, p in jobs]
        try:
            pending = set(futures)
            while pending:
                check()
                done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        # the executor has no public way to end a running evaluation, and after a Ctrl-C its workers were seen
        # to outlive this process: end them (each holds only a scratch copy of the model)
        procs = list((getattr(self.ex, "_processes", None) or {}).values())
        self.ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)


class RayPool:
    """Ray tasks on an existing cluster (or a local Ray when ``address`` is None): the context is put once in
    the object store; each task asks for ``cpus`` CPUs and runs onnxruntime with as many threads."""

    def __init__(self, ctx: EvalContext, address: str | None, cpus: int = 1):
        try:
            import ray  # noqa: PLC0415 - optional extra: pip install 'quant-workbench[ray]'
        except ImportError as e:
            raise WorkbenchError("--ray needs Ray, which is not installed",
                                 "pip install 'quant-workbench[ray]'") from e
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                         runtime_env={"env_vars": {"OMP_NUM_THREADS": str(cpus)}})
            except Exception as e:  # noqa: BLE001 - Ray raises ConnectionError and its own types
                raise WorkbenchError(f"could not connect to the Ray cluster at {address or 'a new local Ray'}: "
                                     f"{type(e).__name__}: {str(e)[:200]}",
                                     "pass --ray HOST:PORT of a running cluster (ray start --head), or --ray "
                                     "alone for a local one") from e
        self.ctx_ref = ray.put(replace(ctx, threads=cpus))
        self.remote = ray.remote(num_cpus=cpus)(evaluate)
        total = int(ray.cluster_resources().get("CPU", 1))
        self.workers = max(1, total // cpus)
        self.description = f"Ray cluster ({total} CPUs, {cpus} per task)"

    def run(self, jobs: list[tuple[dict, str]], check=lambda: None):
        refs = [self.remote.remote(self.ctx_ref, r, p) for r, p in jobs]
        pending = list(refs)
        try:
            while pending:
                check()
                done, pending = self.ray.wait(pending, num_returns=1, timeout=0.2)
                for ref in done:
                    yield self.ray.get(ref)
        finally:
            for ref in pending:
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        pass  # the cluster is the user's; a local Ray ends with this process


def make_pool(ctx: EvalContext, workers: int, ray_address: str | None | bool = False, ray_cpus: int = 1):
    """The pool for these options: Ray when ``ray_address`` is not False, else local workers or inline."""
    if ray_address is not False:
        return RayPool(ctx, ray_address or None, ray_cpus)
    if workers <= 1:
        return InlinePool(ctx)
    return LocalPool(ctx, workers)
