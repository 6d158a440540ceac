"""Built-in executors: ``serial`` (this process) and ``process`` (``-n N`` worker processes).

Executors register through ``deploybench_register_executors`` like any plugin's. Cases are
independent and seeded, so every executor produces the same records as a serial run.

Live cases never share a device. The process executor gives them *lanes*: one lane per visible GPU
(each worker running a live case sees only its GPU through ``CUDA_VISIBLE_DEVICES``), or a single
lane on a CPU-only machine, so at most one live case runs per GPU, or one at all on the CPU.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import importlib.util
import multiprocessing as mp
import os
import signal
import traceback
from typing import Any, Callable, Iterator, Sequence

from .hookspecs import hookimpl
from .plugins import DeployBenchPluginManager, UsageError, create_plugin_manager
from .results import ResultsFormatError
from .runner import Case, CaseResult, RunOptions, run_case

__all__ = ["SerialExecutor", "ProcessExecutor", "LaneScheduler", "visible_gpus"]


class SerialExecutor:
    """Runs cases one after another in this process, streaming per-trial progress."""

    name = "serial"

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 1,
            on_trial: Callable[[Case, dict], None] | None = None,
            on_case_start: Callable[[Case], None] | None = None, **_: Any) -> Iterator[CaseResult]:
        for case in cases:
            if on_case_start is not None:
                on_case_start(case)
            yield run_case(case, options, pm=pm, on_trial=on_trial)


def visible_gpus() -> list[str]:
    """GPU ids live cases may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``torch.cuda.device_count()``
    (torch is imported only here, and only when torch is installed). None when live runs on the CPU
    (``DEPLOYBENCH_LIVE_DEVICE=cpu``)."""
    if os.environ.get("DEPLOYBENCH_LIVE_DEVICE", "auto") == "cpu":
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids: list[str] = []
        for part in env.split(","):
            part = part.strip()
            if not part or part.startswith("-"):
                break  # CUDA ignores every id after an invalid one
            ids.append(part)
        return ids
    if importlib.util.find_spec("torch") is None:
        return []
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


class LaneScheduler:
    """Decides which case runs next: analytic/replay cases fill free workers; live cases also need
    a free lane (a GPU id, or ``None`` for the single CPU lane)."""

    def __init__(self, cases: Sequence[Case], workers: int, gpus: Sequence[str] = ()) -> None:
        self.workers = max(1, workers)
        self.other = [c for c in cases if c.kind != "live"]
        self.live = [c for c in cases if c.kind == "live"]
        self.free_lanes: list[str | None] = list(gpus) if gpus else [None]
        self.running = 0

    def take(self) -> list[tuple[Case, str | None]]:
        """Cases to start now, each with its lane (None: no GPU pinning)."""
        started: list[tuple[Case, str | None]] = []
        while self.running < self.workers:
            if self.live and self.free_lanes:
                started.append((self.live.pop(0), self.free_lanes.pop(0)))
            elif self.other:
                started.append((self.other.pop(0), None))
            else:
                break
            self.running += 1
        return started

    def release(self, case: Case, lane: str | None) -> None:
        self.running -= 1
        if case.kind == "live":
            self.free_lanes.append(lane)

    @property
    def pending(self) -> bool:
        return bool(self.other or self.live)


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker() -> None:
    """Each worker owns one core: math libraries get one thread (as Ray does for a one-CPU task),
    unless the user set a thread count; N workers each spawning a thread per core oversubscribe the
    machine. Live evaluations are unaffected (their fresh processes set their own thread counts).
    An idle worker stops quietly on SIGINT (Ctrl-C reaches the whole process group)."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    if not any(v in os.environ for v in _THREAD_VARS):
        for var in _THREAD_VARS:
            os.environ[var] = "1"  # libraries loaded from now on
        if importlib.util.find_spec("threadpoolctl") is not None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)  # libraries already loaded (numpy's BLAS)


@functools.lru_cache(maxsize=8)
def _plugin_manager(plugin_args: tuple[str, ...]) -> DeployBenchPluginManager:
    """One plugin manager per worker process and plugin set: building one scans every installed entry
    point (~50 ms), which would otherwise be paid again for every case."""
    return create_plugin_manager(plugin_args)


def _worker(case: Case, options: RunOptions, gpu: str | None = None) -> CaseResult:
    """Run a case in a worker process; anything unexpected becomes that case's error. While it runs,
    SIGINT raises KeyboardInterrupt, so the case leaves its file resumable."""
    idle_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # inherited by the live profiler's fresh processes
    try:
        return run_case(case, options, pm=_plugin_manager(options.plugin_args))
    except (KeyboardInterrupt, UsageError, ResultsFormatError):
        raise  # the session's to handle: stop, or refuse with exit 2
    except BaseException as exc:  # noqa: BLE001 - the session must go on
        return CaseResult(case=case, status="error", path=str(case.path(options.out_dir)),
                          error={"stage": "worker", "type": type(exc).__name__, "message": str(exc),
                                 "traceback": traceback.format_exc()})
    finally:
        signal.signal(signal.SIGINT, idle_handler)
        if gpu is not None:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved


def _died(case: Case, options: RunOptions, exc: BaseException) -> CaseResult:
    return CaseResult(case=case, status="error", path=str(case.path(options.out_dir)), error={
        "stage": "worker", "type": "WorkerDied",
        "message": "its worker process died (a native crash such as a segfault in an in-process evaluation, "
                   "or the OOM killer; run risky evaluations in a subprocess); the trials written so far are "
                   "kept and --resume retries the case",
        "traceback": f"{type(exc).__name__}: {exc}"})


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    """Ctrl-C: stop now. Workers get SIGINT (each case leaves its file resumable), no new work starts."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        if proc.is_alive():
            try:
                os.kill(proc.pid, signal.SIGINT)
            except OSError:
                pass
    pool.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor:
    """Runs cases in ``workers`` processes (``-n N``). Live cases run one per GPU, or one at a time on
    a CPU-only machine, so their timings never interfere. A worker process that dies takes only its
    own case down: the cases it shared the pool with are rerun, each alone in a fresh process."""

    name = "process"

    def describe(self, cases: Sequence[Case], workers: int, **_: Any) -> str:
        text = f"executor: {self.name} with {workers} workers"
        if any(c.kind == "live" for c in cases):
            gpus = visible_gpus()
            text += (f"; live cases run one per GPU (CUDA_VISIBLE_DEVICES={','.join(gpus)})" if gpus else
                     "; live cases run one at a time so their timings do not interfere")
        return text

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 2,
            on_trial: Callable[[Case, dict], None] | None = None,
            on_case_start: Callable[[Case], None] | None = None, **_: Any) -> Iterator[CaseResult]:
        ctx = mp.get_context("spawn")
        gpus = visible_gpus() if any(c.kind == "live" for c in cases) else []
        sched = LaneScheduler(cases, workers, gpus)
        suspects: list[tuple[Case, str | None]] = []
        while sched.pending:
            pool = cf.ProcessPoolExecutor(max_workers=sched.workers, mp_context=ctx, initializer=_init_worker)
            futures: dict[cf.Future, tuple[Case, str | None]] = {}
            try:
                while True:
                    for case, lane in sched.take():
                        futures[pool.submit(_worker, case, options, lane)] = (case, lane)
                    if not futures:
                        break
                    done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
                    broken = False
                    for fut in done:
                        case, lane = futures.pop(fut)
                        sched.release(case, lane)
                        try:
                            result = fut.result()
                        except cf.process.BrokenProcessPool:
                            suspects.append((case, lane))
                            broken = True
                            continue
                        yield result
                    if broken:  # every case in flight failed with the pool: find the culprit below
                        for fut, (case, lane) in futures.items():
                            sched.release(case, lane)
                            suspects.append((case, lane))
                        futures.clear()
                        break
            except BaseException:
                _stop(pool)
                raise
            pool.shutdown(wait=True)
            for case, lane in suspects:  # alone in a fresh process: a second death is the case's own
                with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker) as solo:
                    try:
                        yield solo.submit(_worker, case, options, lane).result()
                    except cf.process.BrokenProcessPool as exc:
                        yield _died(case, options, exc)
                    except BaseException:
                        _stop(solo)
                        raise
            suspects.clear()


@hookimpl
def deploybench_register_executors() -> list[Any]:
    return [SerialExecutor(), ProcessExecutor()]
