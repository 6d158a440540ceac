"""``deploybench run --executor ray [--ray-address ADDR]``: every case is a Ray task.

Each task calls :func:`deploybench.executors.run_case_in_worker` on the worker (the public function
every executor uses, see the :class:`deploybench.executors.Executor` protocol), so results are written into the
same results directory (it must be on a filesystem the workers share) and stream back as the cases
finish. Analytic and replay cases ask for one CPU. Live cases never share a device: they ask for one
GPU when the cluster has GPUs and live runs on the GPU, else for every CPU of a node.

Without ``--ray-address`` (or with ``local``) a local Ray instance with ``-n`` CPUs is started and
stopped for the run; ``auto`` or ``HOST:PORT`` connects to a running cluster (``ray start --head``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Mapping, Sequence

from deploybench import hookimpl
from deploybench.executors import run_case_in_worker
from deploybench.runner import SESSION_ERRORS, Case, CaseResult, RunOptions

ADDRESS_ENV = "DEPLOYBENCH_RAY_ADDRESS"


def _run_remote(case: Case, options: RunOptions) -> CaseResult:
    """Body of the Ray task: one case, its file written where the task runs. Ray workers belong to
    Ray (a local instance is shut down with the session; a cluster's outlive it by design), so they
    are not bound to the runner; a cancelled task stops its case resumably."""
    return run_case_in_worker(case, options, stage="ray worker")


def resources_for(case: Case, cluster: Mapping[str, float], node_cpus: float,
                  live_device: str | None = None) -> dict[str, float]:
    """Ray resources of one case: one CPU; a live case one GPU (when there are GPUs and live runs on
    them) or a whole node's CPUs, so that two live cases never share a device."""
    if case.kind != "live":
        return {"num_cpus": 1}
    device = live_device if live_device is not None else str(dict(case.task_params).get("device", "auto"))
    if cluster.get("GPU", 0) >= 1 and device != "cpu":
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": max(1.0, node_cpus)}


def _address(session: Any) -> str | None:
    cli = getattr(session, "cli_options", None)
    return getattr(cli, "ray_address", None) or os.environ.get(ADDRESS_ENV) or None


class RayExecutor:
    """Runs cases as Ray tasks; see the module docstring. ``deploybench record --executor ray`` measures
    through :meth:`measurement_pool` (:mod:`deploybench_ray.recording`)."""

    name = "ray"

    def measurement_pool(self, device: str, *, options: Any = None, lock: str | None = None) -> Any:
        """A recording's measurements on the Ray nodes that declare ``device:<device>``."""
        from .recording import RayMeasurementPool

        return RayMeasurementPool(device, address=getattr(options, "ray_address", None), lock=lock,
                                  every_node=bool(getattr(options, "ray_every_node", False)))

    def describe(self, cases: Sequence[Case], workers: int, session: Any = None) -> str:
        address = _address(session)
        where = (f"a local Ray instance with {workers} CPUs" if address in (None, "local")
                 else f"the Ray cluster at {address}")
        text = f"executor: ray on {where}, one CPU per case"
        if any(c.kind == "live" for c in cases):
            text += "; live cases take a GPU each, or a whole node on a CPU-only cluster"
        return text

    def run(self, cases: Sequence[Case], options: RunOptions, *, pm: Any = None, workers: int = 1,
            on_trial: Callable | None = None, on_case_start: Callable | None = None, session: Any = None,
            **_: Any) -> Iterator[CaseResult]:
        import ray
        from ray.exceptions import RayTaskError

        address = _address(session)
        started_here = not ray.is_initialized()
        if started_here:
            if address in (None, "local"):
                ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        pending: dict[Any, Case] = {}
        try:
            remote = ray.remote(_run_remote)
            cluster = ray.cluster_resources()
            node_cpus = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
            for case in cases:
                ref = remote.options(**resources_for(case, cluster, node_cpus)).remote(case, options)
                pending[ref] = case
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except RayTaskError as exc:
                        if isinstance(exc.cause, SESSION_ERRORS):
                            raise exc.cause from None
                        raise
        except BaseException:
            for ref in pending:  # Ctrl-C or a refusal: stop the cases still running on the cluster
                ray.cancel(ref)
            raise
        finally:
            if started_here:
                ray.shutdown()


@hookimpl
def deploybench_register_executors() -> list[Any]:
    return [RayExecutor()]


@hookimpl
def deploybench_addoption(parser: Any, command: str) -> None:
    parser.add_argument("--ray-address", default=None, metavar="ADDR",
                        help="with --executor ray: the Ray cluster to run cases or measurements on ('auto' finds "
                             "the one `ray start --head` started on this machine, or HOST:PORT); default for run: "
                             "'local', a local Ray instance with -n CPUs; for record: 'auto' (also "
                             f"${ADDRESS_ENV})")
    if command == "record":
        parser.add_argument("--ray-every-node", action="store_true",
                            help="with --executor ray: measure each configuration once on every node of the device "
                                 "(a heterogeneity study: deploybench table heterogeneity compares the nodes)")
