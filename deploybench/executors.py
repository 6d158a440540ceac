"""Built-in executors: ``serial`` (this process) and ``process`` (``-n N`` worker processes).

Executors register through ``deploybench_register_executors`` like any plugin's. Cases are
independent and seeded, so every executor produces the same records as a serial run.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
from typing import Any, Callable, Iterator, Sequence

from .hookspecs import hookimpl
from .runner import Case, CaseResult, RunOptions, run_case

__all__ = ["SerialExecutor", "ProcessExecutor"]


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


def _worker(case: Case, options: RunOptions) -> CaseResult:
    """Run a case in a worker process; anything unexpected becomes that case's error."""
    try:
        return run_case(case, options)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the session must go on
        import traceback

        return CaseResult(case=case, status="error", path=str(case.path(options.out_dir)),
                          error={"stage": "worker", "type": type(exc).__name__, "message": str(exc),
                                 "traceback": traceback.format_exc()})


class ProcessExecutor:
    """Runs cases in ``workers`` processes (``-n N``). Live cases are kept in one lane so their
    timings never interfere: they run one at a time, alongside the analytic and replay cases."""

    name = "process"

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 2,
            on_trial: Callable[[Case, dict], None] | None = None,
            on_case_start: Callable[[Case], None] | None = None, **_: Any) -> Iterator[CaseResult]:
        ctx = mp.get_context("spawn")
        live = [c for c in cases if c.kind == "live"]
        other = [c for c in cases if c.kind != "live"]
        with cf.ProcessPoolExecutor(max_workers=max(1, workers), mp_context=ctx) as pool:
            futures = {pool.submit(_worker, c, options): c for c in other}
            live_iter = iter(live)
            live_future = None

            def submit_next_live() -> None:
                nonlocal live_future
                nxt = next(live_iter, None)
                live_future = pool.submit(_worker, nxt, options) if nxt is not None else None
                if live_future is not None:
                    futures[live_future] = nxt

            submit_next_live()
            try:
                while futures:
                    done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        futures.pop(fut)
                        if fut is live_future:
                            submit_next_live()
                        yield fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


@hookimpl
def deploybench_register_executors() -> list[Any]:
    return [SerialExecutor(), ProcessExecutor()]
