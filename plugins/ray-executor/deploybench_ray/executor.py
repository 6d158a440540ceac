"""``deploybench run --executor ray [--ray-address ADDR]``: every case is a Ray task.

Each task calls :func:`deploybench.runner.run_case` on the worker, so results are written into the
same results directory (it must be on a filesystem the workers share) and stream back as the
cases finish. Analytic and replay cases ask for one CPU; live cases ask for a GPU when the cluster
has GPUs (one live case per GPU), else for the whole CPU budget of a node so that timings never
interfere. Without ``--ray-address`` a local Ray instance is started (and stopped) for the run.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Callable, Iterator, Sequence

from deploybench import hookimpl
from deploybench.runner import Case, CaseResult, RunOptions, run_case


def _run_remote(case: Case, options: RunOptions) -> CaseResult:
    try:
        return run_case(case, options)
    except BaseException as exc:  # noqa: BLE001 - the case's error, not the session's
        return CaseResult(case=case, status="error", path=str(case.path(options.out_dir)),
                          error={"stage": "ray worker", "type": type(exc).__name__, "message": str(exc),
                                 "traceback": traceback.format_exc()})


class RayExecutor:
    """Runs cases as Ray tasks; see the module docstring."""

    name = "ray"

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 1,
            on_trial: Callable | None = None, on_case_start: Callable | None = None, session: Any = None,
            **_: Any) -> Iterator[CaseResult]:
        import ray

        cli = getattr(session, "cli_options", None)
        address = getattr(cli, "ray_address", None) or os.environ.get("DEPLOYBENCH_RAY_ADDRESS")
        started_here = not ray.is_initialized()
        if started_here:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        try:
            remote = ray.remote(_run_remote)
            gpus = ray.cluster_resources().get("GPU", 0)
            cpus = ray.cluster_resources().get("CPU", 1)
            pending = {}
            for case in cases:
                if case.kind == "live":
                    opts = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": cpus}
                else:
                    opts = {"num_cpus": 1}
                pending[remote.options(**opts).remote(case, options)] = case
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    pending.pop(ref)
                    yield ray.get(ref)
        finally:
            if started_here:
                ray.shutdown()


@hookimpl
def deploybench_register_executors() -> list[Any]:
    return [RayExecutor()]


@hookimpl
def deploybench_addoption(parser: Any) -> None:
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="Ray cluster to run cases on with --executor ray ('auto' for the local cluster "
                             "started by `ray start --head`); default: start a local Ray instance")
