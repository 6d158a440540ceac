"""``deploybench record --executor ray``: a recording spread over a fleet of measuring machines.

Each machine that measures joins the Ray cluster declaring its device as a custom resource with one
slot, ``ray start --address HEAD --resources '{"device:small": 1}'``. Every measurement is a Ray task
that asks for one ``device:<label>`` slot (and no CPU), so Ray places it on a node of that device, and
never two at once on one node: a measurement owns its machine's cores, as on a single machine. Ray
does the placement, and retries a task whose node or worker died (``max_retries``) on another node;
a measurement whose retries are spent is left out, and the recorder asks for it again in its next
round. The results stream back to the recorder, the only writer of the table, each with the identity
of the node that measured it (Ray node id, host, IP, an optional ``DEPLOYBENCH_NODE_LABEL``, CPU and
cores) and that node's speed reference for the pass.

With ``every_node`` (``--ray-every-node``) each measurement is made once on every node of the device
instead (pinned with Ray's node-affinity scheduling): the deliberate heterogeneity study, where every
configuration is compared across machines (``deploybench table heterogeneity``). A pinned measurement
whose node dies is left out (it cannot move without changing what it measures).

The speed reference (:func:`deploybench.live.drift.reference_workload`) is measured by the first
measurement task of each pass that lands on a node, before its measurement, and kept in a small file
in that node's temporary folder for the others of the pass: nodes need no state in the driver and no
second scheduler.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from deploybench.errors import UsageError
from deploybench.device_tables.recording import Measured

ADDRESS_ENV = "DEPLOYBENCH_RAY_ADDRESS"
LABEL_ENV = "DEPLOYBENCH_NODE_LABEL"
RESOURCE_PREFIX = "device:"
#: Ray's retries of a measurement whose worker or node died (not of one that failed on its own)
MAX_RETRIES = 3


def unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` (or ``ray://HOST:PORT``) address, or None when something
    does, or when the address is ``auto``/``local`` (Ray finds those itself)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def device_resource(device: str) -> str:
    """The custom Ray resource a node of ``device`` declares: ``device:<label>``."""
    return device if device.startswith(RESOURCE_PREFIX) else RESOURCE_PREFIX + device


def node_identity() -> dict[str, Any]:
    """Who measured: this Ray node's id, host, IP and label, and its CPU and core count."""
    import ray

    from deploybench.machine import machine_info

    info = machine_info()
    return {"id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(), "label": os.environ.get(LABEL_ENV) or None,
            "cpu": info.get("cpu"), "cpu_count": info.get("cpu_count")}


def _speed_reference(run_id: str, node_id: str, pass_no: int, reference_fn: Callable[[], dict]) -> dict:
    """This node's speed reference for this pass of this recording: measured once, then read back."""
    path = Path(tempfile.gettempdir()) / f"deploybench-speed-{run_id}-{node_id[:16]}-{pass_no}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reference = reference_fn()
        tmp = path.with_name(path.name + f".{os.getpid()}")
        tmp.write_text(json.dumps(reference), encoding="utf-8")
        os.replace(tmp, path)
        return reference


def measure_on_node(request: Any, run_id: str, pass_no: int, lock: str | None,
                    profile_fn: Callable[[Any], Any] | None, reference_fn: Callable[[], dict] | None) -> tuple:
    """Body of one measurement task: the node's speed reference for the pass (first task of the pass
    on this node), then the measurement, under ``lock`` on this node when given."""
    from deploybench.live.drift import reference_workload
    from deploybench.live.profiler import profile
    from deploybench.locking import exclusive_lock

    node = node_identity()
    with exclusive_lock(lock):
        reference = _speed_reference(run_id, node["id"], pass_no, reference_fn or reference_workload)
        m = (profile_fn or profile)(request)
    data = m.to_dict() if hasattr(m, "to_dict") else dict(m)
    return data, reference, node, round(os.getloadavg()[0], 2)


class RayMeasurementPool:
    """A :class:`deploybench.device_tables.recording.MeasurementPool` on the nodes of a Ray cluster that declare
    ``device:<device>``; see the module docstring. ``address``: the cluster (``auto``, ``HOST:PORT``;
    default ``$DEPLOYBENCH_RAY_ADDRESS`` or ``auto``), unless Ray is already initialised in this process.
    ``profile_fn`` and ``reference_fn`` replace the live profiler and the reference workload (tests).
    Constructor arguments are stored as given."""

    def __init__(self, device: str, *, address: str | None = None, lock: str | None = None,
                 every_node: bool = False, profile_fn: Callable[[Any], Any] | None = None,
                 reference_fn: Callable[[], dict] | None = None, max_retries: int = MAX_RETRIES) -> None:
        self.device = device
        self.address = address
        self.every_node = every_node
        self.lock = lock
        self.profile_fn = profile_fn
        self.reference_fn = reference_fn
        self.max_retries = max_retries
        self._run_id = uuid.uuid4().hex[:12]
        self._started_here = False

    @property
    def resource(self) -> str:
        return device_resource(self.device)

    def _connect(self) -> Any:
        import ray

        if not ray.is_initialized():
            address = self.address or os.environ.get(ADDRESS_ENV) or "auto"
            problem = unreachable(address)
            if problem:  # Ray itself retries a wrong address for minutes before it says so
                raise UsageError(f"cannot reach the Ray cluster at {address!r}: {problem}; start one with `ray start "
                                 f"--head` and pass its HOST:PORT (or auto on the head node)")
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError) as exc:
                raise UsageError(f"cannot reach the Ray cluster at {address!r} ({exc}); start one with "
                                 f"`ray start --head` and join each measuring machine with `ray start --address "
                                 f"HEAD:6379 --resources '{{\"{self.resource}\": 1}}'`") from None
            self._started_here = True
        return ray

    def slots(self) -> int:
        """Measuring slots the cluster has now (one per live node of the device)."""
        ray = self._connect()
        return int(ray.cluster_resources().get(self.resource, 0))

    @property
    def copies(self) -> int:
        """Measurements one job makes: one per node of the device with ``every_node``, else one."""
        return max(1, len(self._nodes())) if self.every_node else 1

    def _nodes(self) -> list[dict]:
        ray = self._connect()
        return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(self.resource)]

    def describe(self) -> str:
        nodes = self._nodes()
        return (f"measuring on {len(nodes)} Ray node(s) declaring {self.resource} "
                f"({', '.join(sorted(n.get('NodeManagerAddress', '?') for n in nodes))}), one measurement per node"
                + (" at a time, each configuration on every node" if self.every_node else " at a time"))

    def measure(self, pass_no: int, jobs: Iterable[tuple[dict, Any]]) -> Iterator[Measured]:
        ray = self._connect()
        from ray.exceptions import RayTaskError

        if self.slots() < 1:
            known = sorted(k for k in ray.cluster_resources() if k.startswith(RESOURCE_PREFIX))
            raise UsageError(f"no node of the Ray cluster declares {self.resource}; join each measuring machine "
                             f"with `ray start --address HEAD:6379 --resources '{{\"{self.resource}\": 1}}'`"
                             + (f" (declared devices: {', '.join(known)})" if known else ""))
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(measure_on_node)
        placement = dict(resources={self.resource: 1}, num_cpus=0, max_retries=self.max_retries,
                         retry_exceptions=False)
        task = remote.options(**placement)
        pending = iter(jobs)
        in_flight: dict[Any, dict] = {}
        exhausted = False

        def fill() -> None:
            nonlocal exhausted
            while not exhausted and len(in_flight) < max(1, self.slots()):
                try:
                    config, request = next(pending)  # the recorder checks its time box as it hands one out
                except StopIteration:
                    exhausted = True
                    return
                args = (request, self._run_id, pass_no, self.lock, self.profile_fn, self.reference_fn)
                if not self.every_node:
                    in_flight[task.remote(*args)] = config
                    continue
                for node in self._nodes():  # pinned: a node's own measurement cannot move to another
                    pinned = remote.options(**placement, scheduling_strategy=NodeAffinitySchedulingStrategy(
                        node["NodeID"], soft=False))
                    in_flight[pinned.remote(*args)] = config

        try:
            fill()
            while in_flight:
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    config = in_flight.pop(ref)
                    try:
                        data, reference, node, load = ray.get(ref)
                    except RayTaskError as exc:  # the measurement itself failed: a bug, not a lost node
                        raise exc.as_instanceof_cause() from None
                    except ray.exceptions.RayError:
                        continue  # its node died and the retries are spent: asked for again next round
                    yield Measured(config, data, reference, node, load)
                fill()
        finally:
            for ref in in_flight:  # stopped early (Ctrl-C, an error): nothing left running on the fleet
                ray.cancel(ref)

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False
