"""Registers the deployment scenarios (edge_tight, server_throughput, ultra_low_budget).

Target ``live`` measures on this machine with the live profiler; every other target is a recorded
table replayed by :mod:`deploybench.tasks.replay` (imported lazily so the live path works without it).
"""

from __future__ import annotations

import os
from typing import Any

from ..hookspecs import hookimpl
from ..task import Task, TaskParam, TaskSpec
from .deployment import LiveTask, scenarios

LIVE_TARGET = "live"
#: shipped tables in order of preference for the default target: the GPU recording when the package has
#: one (the scenarios describe accelerator deployments), then the CPU recording, then any other table
DEFAULT_TABLE_PREFERENCE: tuple[str, ...] = ("h100", "h200", "cpu")
#: scenarios that describe an edge device replay the emulated edge recording first when it is shipped;
#: ``ultra_low_budget`` replays the small-memory board (768 MB with its runtime), where out-of-memory
#: depends on model, batch, backend and precision and the device limit, not the 1024 MB cap, is what binds
SCENARIO_TABLE_PREFERENCE: dict[str, tuple[str, ...]] = {"edge_tight": ("edge",) + DEFAULT_TABLE_PREFERENCE,
                                                         "ultra_low_budget": ("small",) + DEFAULT_TABLE_PREFERENCE}
#: ``edge_wide`` describes an edge device: its default target is the edge recording when one is shipped
WIDE_TABLE_PREFERENCE: tuple[str, ...] = ("edge", "cpu", "h100", "h200")
WIDE_TASK = "edge_wide"


def _replay_targets() -> tuple[str, ...]:
    try:
        from .replay import available_targets
    except ImportError:
        return ()
    return tuple(t for t in available_targets() if t != LIVE_TARGET)


def live_params() -> tuple[TaskParam, ...]:
    """What a live deployment task takes besides its target (``--task-param edge_tight.device_profile=edge``).
    Each shows in the task's signature, so a case measured under other values refuses ``--resume``."""
    from ..device_tables.grid import MODELS
    from ..live.devices import device_profiles
    from ..live.models import TEST_MODELS

    return (
        TaskParam("device_profile", "host", "the emulated device: its thread budget and memory (cpu, edge, small; "
                  "host = this machine, no emulated limit)", choices=tuple(device_profiles())),
        TaskParam("device", "auto", "where the models run (auto: CUDA when available)", choices=("auto", "cpu", "cuda")),
        TaskParam("models", None, "restrict the model choices to what this machine can afford",
                  choices=tuple(MODELS) + TEST_MODELS, kind="csv"),
        TaskParam("weights", "auto", "pretrained weights from the local torch cache, random ones, or pretrained "
                  "where cached (auto)", choices=("auto", "pretrained", "random")),
        TaskParam("data", None, "an ImageFolder of ImageNet synset folders (ImageNette, for one): accuracy is then "
                  "measured per trial instead of documented per precision"),
    )


def _factory(scenario_name: str):
    def build(target: str, **params: Any) -> Task:
        if target == LIVE_TARGET:
            return LiveTask(scenario_name, models=params.get("models"), device=params.get("device"),
                            data_dir=params.get("data"), weights=params.get("weights"),
                            device_profile=params.get("device_profile"))
        if params:
            raise ValueError(f"task parameters ({', '.join(sorted(params))}) apply to target 'live' only; "
                             f"target {target!r} replays a recorded table as it was measured")
        try:
            from .replay import build_replay_task
        except ImportError as exc:
            raise RuntimeError(
                f"target {target!r} of {scenario_name!r} is a recorded table, but the replay module "
                f"deploybench.tasks.replay is not available ({exc}); use target 'live'"
            ) from exc
        return build_replay_task(scenario_name, target)

    return build


def default_target(tables: tuple[str, ...], preference: tuple[str, ...] = DEFAULT_TABLE_PREFERENCE) -> str:
    """The best shipped table (see :data:`DEFAULT_TABLE_PREFERENCE` and :data:`SCENARIO_TABLE_PREFERENCE`),
    or ``live`` when none is shipped, so the main command replays real measurements on a machine without
    the recorded device."""
    for name in preference:
        if name in tables:
            return name
    return sorted(tables)[0] if tables else LIVE_TARGET


def _per_iteration_tables() -> tuple[str, ...]:
    """Shipped tables of format 2 or later (they keep per-iteration timings and per-stage durations,
    which the probe level replays); only each header line is read."""
    try:
        from ..device_tables.table import shipped_tables, table_format_version
    except ImportError:
        return ()
    return tuple(name for name, path in shipped_tables().items() if table_format_version(path) >= 2)


def _preferred(tables: tuple[str, ...], preference: tuple[str, ...]) -> list[str]:
    return [t for t in preference if t in tables] + sorted(t for t in tables if t not in preference)


def wide_source(target: str, tables: tuple[str, ...]) -> str | None:
    """The shipped table the cross-device simulator of ``edge_wide`` on ``target`` is fitted on: the
    preferred per-iteration table recorded on *another* device, or None (then only probe and full)."""
    others = [t for t in _preferred(tables, WIDE_TABLE_PREFERENCE) if t != target]
    return others[0] if others else None


def _wide_factory(tables: tuple[str, ...]):
    def build(target: str) -> Task:
        from ..device_tables.table import load_table, resolve_table
        from .replay_fidelity import MultiFidelityReplayTask, wide_scenario

        source = wide_source(target, tables)
        return MultiFidelityReplayTask(wide_scenario(), load_table(resolve_table(target)), target,
                                       source=load_table(resolve_table(source)) if source else None)

    return build


@hookimpl
def deploybench_register_tasks() -> list[TaskSpec]:
    tables = _replay_targets()
    targets = (LIVE_TARGET,) + tables
    specs = []
    for s in scenarios().values():
        default = default_target(tables, SCENARIO_TABLE_PREFERENCE.get(s.name, DEFAULT_TABLE_PREFERENCE))
        specs.append(TaskSpec(name=s.name, factory=_factory(s.name), targets=targets, default_target=default,
                              description=s.description, kind="live" if default == LIVE_TARGET else "replay",
                              params=live_params()))
    wide = _per_iteration_tables()
    if wide:  # the probe level needs per-iteration timings: registered only when such a table is shipped
        from .replay_fidelity import wide_scenario

        specs.append(TaskSpec(name=WIDE_TASK, factory=_wide_factory(wide), targets=tuple(_preferred(wide, WIDE_TABLE_PREFERENCE)),
                              description=wide_scenario().description, kind="replay"))
    return specs


@hookimpl
def deploybench_leaderboard_metrics() -> list[Any]:
    """Replay targets add "recommendation truly feasible" (see deploybench.tasks.replay)."""
    try:
        from .replay import leaderboard_metrics
    except ImportError:
        return []
    return leaderboard_metrics()


@hookimpl
def deploybench_sessionstart(session: Any) -> None:
    """When a live case is in the session, print the pre-flight doctor table so environment
    failures (no compiler, no Triton, missing provider) are visible before trials are charged.
    The report is cached for a day (``deploybench doctor`` re-probes); ``DEPLOYBENCH_LIVE_DOCTOR=0``
    skips it."""
    if os.environ.get("DEPLOYBENCH_LIVE_DOCTOR", "1") == "0":
        return
    cases = getattr(session, "cases", ()) or ()
    if not any(getattr(c, "kind", None) == "live" or getattr(c, "target", None) == LIVE_TARGET for c in cases):
        return
    from ..live.doctor import doctor_report, format_report

    write = getattr(session, "write", None) or print
    write("live pre-flight (deploybench doctor):")
    for line in format_report(doctor_report(quick=True)).splitlines():
        write("  " + line)
    write()


@hookimpl
def deploybench_sessionfinish(session: Any, exitstatus: int) -> None:
    """After a session with live cases, say how many measurements the contention guard redid and how
    many stayed disturbed (marked ``contaminated`` in their trial's metrics): a figure measured beside
    other work is never presented as clean."""
    results = [r for r in getattr(session, "results", ()) or () if getattr(r.case, "target", None) == LIVE_TARGET]
    if not results:
        return
    from ..results import ResultsFormatError, read_case_file

    out_dir = session.options.out_dir
    trials = redone = contaminated = 0
    for r in results:
        try:
            case_file = read_case_file(r.case.path(out_dir))
        except (OSError, ResultsFormatError):
            continue
        for record in case_file.trials:
            metrics = (record.get("outcome") or {}).get("metrics") or {}
            trials += 1
            redone += int(metrics.get("measurement_attempts", 1) or 1) > 1
            contaminated += bool(metrics.get("contaminated"))
    write = getattr(session, "write", None) or print
    write(f"live measurements: {trials} trials; {redone} redone by the contention guard (other work disturbed "
          f"them); {contaminated} still disturbed after every retry (marked contaminated in their metrics)")
