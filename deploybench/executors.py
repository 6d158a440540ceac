"""Built-in executors: ``serial`` (this process) and ``process`` (``-n N`` worker processes).

Executors register through ``deploybench_register_executors`` like any plugin's. Cases are
independent and seeded, so every executor produces the same records as a serial run.

Live cases never share a device. The process executor gives them *lanes*: one lane per visible GPU
(each worker running a live case sees only its GPU through ``CUDA_VISIBLE_DEVICES``), or a single
lane on a CPU-only machine, so at most one live case runs per GPU, or one at all on the CPU.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import importlib.util
import multiprocessing as mp
import os
import signal
import traceback
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

from .hookspecs import hookimpl
from .lifeline import ORPHAN_EXIT_CODE, bind_to_parent, parent_is_gone
from .plugins import DeployBenchPluginManager, create_plugin_manager
from .runner import SESSION_ERRORS, Case, CaseResult, RunOptions, run_case
from .signals import WORKER_STOP_SIGNALS, signals_interrupt

__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "LaneScheduler", "visible_gpus", "live_on_cpu", "run_case_in_worker",
           "prepare_worker_process", "rerun_options"]


@runtime_checkable
class Executor(Protocol):
    """What an executor plugin provides (register instances with ``deploybench_register_executors``).

    ``run`` runs every case once and yields each :class:`~deploybench.runner.CaseResult` as the case
    finishes, in any order. It must:

    - run each case with :func:`run_case_in_worker` (or :func:`~deploybench.runner.run_case` in this
      process), which writes the case file and turns the case's own faults into its error result;
    - let the session's exceptions through (:data:`deploybench.runner.SESSION_ERRORS`: interrupted,
      refused, results disk failed), after stopping the cases still running (each leaves its file
      resumable);
    - never leave a process running after ``run`` returns or raises, nor after the runner is killed:
      call :func:`prepare_worker_process` first thing in every worker process it starts.

    ``pm`` is the session's plugin manager for executors that run in this process (serial); others
    build their own in each worker from ``options.plugin_args``. ``on_trial(case, record)`` and
    ``on_case_start(case)`` are progress callbacks an executor may call (the serial one does);
    ``session`` is the running :class:`~deploybench.session.Session` (its ``cli_options`` carry the
    options the plugin added). An optional ``describe(cases, workers, session=None) -> str`` gives the
    run header's executor line. An optional ``measurement_pool(device, *, options, lock) ->``
    :class:`deploybench.device_tables.recording.MeasurementPool` lets ``deploybench record --executor NAME`` spread a
    recording's measurements over the machines the executor reaches (``options``: the parsed command
    line, with the options the plugin added).
    """

    name: str

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 1,
            on_trial: Callable[[Case, dict], None] | None = None,
            on_case_start: Callable[[Case], None] | None = None, session: Any = None) -> Iterator[CaseResult]:
        ...  # pragma: no cover - a protocol


@functools.lru_cache(maxsize=8)
def _plugin_manager(plugin_args: tuple[str, ...]) -> DeployBenchPluginManager:
    """One plugin manager per worker process and plugin set: building one scans every installed entry
    point (~50 ms), which would otherwise be paid again for every case."""
    return create_plugin_manager(plugin_args)


def run_case_in_worker(case: Case, options: RunOptions, *, parent_pid: int | None = None,
                       stage: str = "worker") -> CaseResult:
    """Run one case in a worker process (of any executor) and return its result.

    Anything unexpected becomes that case's error (``stage`` names where it ran); the session's
    exceptions (:data:`~deploybench.runner.SESSION_ERRORS`) propagate, so the executor can stop and
    the session can refuse or report. A worker whose runner died (``parent_pid`` no longer its
    parent, see :func:`prepare_worker_process`) leaves the case file resumable and exits at once,
    since nobody is left to take the result."""
    try:
        return run_case(case, options, pm=_plugin_manager(options.plugin_args))
    except KeyboardInterrupt:
        if parent_pid is not None and parent_is_gone(parent_pid):
            os._exit(ORPHAN_EXIT_CODE)
        raise
    except SESSION_ERRORS:
        raise
    except BaseException as exc:  # noqa: BLE001 - the case's error; the session must go on
        return CaseResult(case=case, status="error", path=str(case.path(options.out_dir)),
                          error={"stage": stage, "type": type(exc).__name__, "message": str(exc),
                                 "traceback": traceback.format_exc()})


def rerun_options(options: RunOptions) -> RunOptions:
    """Options to run a case again after its worker died: continue it (``--resume``) or start it
    afresh, replacing the partial file this same session wrote."""
    return options if options.resume else dataclasses.replace(options, overwrite=True)


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


def live_on_cpu(cases: Sequence[Case]) -> bool:
    """Whether every live case measures on the CPU (its ``device`` task parameter is ``cpu``): then
    live cases need no GPU lane."""
    live = [c for c in cases if c.kind == "live"]
    return bool(live) and all(dict(c.task_params).get("device") == "cpu" for c in live)


def visible_gpus(device: str = "auto") -> list[str]:
    """GPU ids live cases may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``torch.cuda.device_count()``
    (torch is imported only here, and only when torch is installed). None when live runs on the CPU
    (``device="cpu"``)."""
    if device == "cpu":
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


def _stop_quietly(signum: int, frame: Any) -> None:
    os._exit(128 + signum)


def prepare_worker_process(parent_pid: int | None = None) -> None:
    """Call first in every worker process an executor starts: the worker stops when its runner dies
    (even by SIGKILL; see :mod:`deploybench.lifeline`), and an idle worker exits quietly on SIGINT,
    SIGTERM or SIGHUP (Ctrl-C and ``kill`` of a process group reach every worker)."""
    bind_to_parent(parent_pid)
    for signum in WORKER_STOP_SIGNALS:
        signal.signal(signum, _stop_quietly)


def _init_worker(parent_pid: int) -> None:
    """Each worker owns one core: math libraries get one thread (as Ray does for a one-CPU task),
    unless the user set a thread count; N workers each spawning a thread per core oversubscribe the
    machine. Live evaluations are unaffected (their fresh processes set their own thread counts)."""
    prepare_worker_process(parent_pid)
    if not any(v in os.environ for v in _THREAD_VARS):
        for var in _THREAD_VARS:
            os.environ[var] = "1"  # libraries loaded from now on
        if importlib.util.find_spec("threadpoolctl") is not None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)  # libraries already loaded (numpy's BLAS)


def _worker(case: Case, options: RunOptions, gpu: str | None, parent_pid: int) -> CaseResult:
    """Run a case in a pool process. While it runs, SIGINT, SIGTERM and SIGHUP raise
    KeyboardInterrupt, so the case leaves its file resumable."""
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # inherited by the live profiler's fresh processes
    try:
        with signals_interrupt(WORKER_STOP_SIGNALS):
            return run_case_in_worker(case, options, parent_pid=parent_pid)
    finally:
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
            gpus = visible_gpus("cpu" if live_on_cpu(cases) else "auto")
            text += (f"; live cases run one per GPU (CUDA_VISIBLE_DEVICES={','.join(gpus)})" if gpus else
                     "; live cases run one at a time so their timings do not interfere")
        return text

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 2,
            on_trial: Callable[[Case, dict], None] | None = None,
            on_case_start: Callable[[Case], None] | None = None, **_: Any) -> Iterator[CaseResult]:
        ctx = mp.get_context("spawn")
        me = os.getpid()
        gpus = visible_gpus("cpu" if live_on_cpu(cases) else "auto") if any(c.kind == "live" for c in cases) else []
        sched = LaneScheduler(cases, workers, gpus)
        suspects: list[tuple[Case, str | None]] = []
        while sched.pending:
            pool = cf.ProcessPoolExecutor(max_workers=sched.workers, mp_context=ctx, initializer=_init_worker,
                                          initargs=(me,))
            futures: dict[cf.Future, tuple[Case, str | None]] = {}
            try:
                while True:
                    for case, lane in sched.take():
                        futures[pool.submit(_worker, case, options, lane, me)] = (case, lane)
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
                with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker,
                                            initargs=(me,)) as solo:
                    try:
                        yield solo.submit(_worker, case, rerun_options(options), lane, me).result()
                    except cf.process.BrokenProcessPool as exc:
                        yield _died(case, options, exc)
                    except BaseException:
                        _stop(solo)
                        raise
            suspects.clear()


@hookimpl
def deploybench_register_executors() -> list[Any]:
    return [SerialExecutor(), ProcessExecutor()]
