"""Replay targets: a deployment scenario evaluated against a recorded table.

Each evaluation returns one of the recorded repeats of the configuration, chosen deterministically
from the case seed, the trial index and the configuration (same seed → same outcomes; different
seeds see the recorded noise). ``cost_s`` is the recorded evaluation time, crashes included. The
space offered to optimizers is exactly the recorded grid, so off-grid configurations are impossible.

Replay equals live. The live early-stop rule (:func:`deploybench.live.timing.early_stop_index`: the
median of the timed iterations so far above 5× the scenario's latency cap, 3× once the case has found
a feasible configuration) is applied to the repeat's recorded sequence of timed iterations, so a
replay stops at exactly the iteration a live run would have. A replayed early stop returns only what
the live early stop measured (:data:`deploybench.live.profiler.EARLY_STOP_VIEW`: no percentiles, no
memory, no objective) and is charged what the live run cost up to the stop: preparation, process start,
import, load, compilation and warm-up as recorded, plus the timed iterations up to the stop. Tables
recorded before per-iteration timings were kept (format 1) apply the same rule to the recorded median.
Measurements disturbed by other work (``contaminated``) are never served.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
import statistics
from pathlib import Path
from typing import Any, Mapping

from ..outcome import Outcome
from ..device_tables.table import Table, TableError, ground_truth, load_table, resolve_table, shipped_tables
from ..task import EvalContext, Task, TaskMetadata
from .deployment import Scenario, get_scenario, measurement_to_outcome

__all__ = ["ReplayTask", "build_replay_task", "available_targets", "RecommendationTrulyFeasible",
           "leaderboard_metrics"]

EARLY_STOP_MIN_ITERS = 3
#: stages a live run has finished when its first timed iteration starts
_BEFORE_TIMING = ("prepare_s", "spawn_teardown_s", "import_s", "load_s", "compile_s", "warmup_s")


def available_targets() -> tuple[str, ...]:
    """Names of the tables shipped with the package (``cpu``, ``h100`` when recorded)."""
    return tuple(shipped_tables())


def worst_feasible(task: "ReplayTask") -> float | None:
    """The worst objective of any recorded repeat that replay would return as feasible (judged as
    :meth:`ReplayTask.evaluate` judges it): the task's penalty for a seed that found nothing,
    derived from the table, so it never depends on which optimizers ran."""
    values = []
    for key in task.table.grid_keys():
        for m in task.table.repeats(key):
            o = measurement_to_outcome(task, m)
            if o.feasible and o.objective is not None:
                values.append(float(o.objective))
    return min(values, key=lambda v: task.objective.sign * v) if values else None


def _pick(seed: int, trial: int, key: str, n: int) -> int:
    digest = hashlib.sha256(f"{seed}:{trial}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


class ReplayTask(Task):
    """A scenario replayed from a recorded table (see the module docstring for the rules)."""

    VERSION = "2"  # 2: the live early-stop rule on recorded timings; early stops reveal only what live measured

    def __init__(self, scenario: Scenario | str, table: Table, target: str) -> None:
        scenario = get_scenario(scenario) if isinstance(scenario, str) else scenario
        self.scenario = scenario
        self.table = table
        self.truth = ground_truth(table, scenario)
        covered, grid = table.coverage()
        if covered < grid:
            raise TableError(f"table {table.path} covers {covered} of its {grid} grid configurations; finish "
                             "recording it (deploybench record ... resumes) or pack its complete part "
                             "(deploybench table pack) before replaying it")
        best_family = self.truth.best_config.get("model") if self.truth.best_config else None
        p = table.provenance
        super().__init__(
            name=scenario.name,
            version=self.VERSION,
            space=table.space,
            objective=scenario.objective,
            constraints=scenario.constraints,
            default_budget=scenario.budget,
            metadata=TaskMetadata(
                kind="replay",
                known_optimum=self.truth.optimum,
                family_param="model",
                best_family=best_family,
                target=target,
                description=scenario.description + f" (replayed from {table.name})",
                reference="recorded with deploybench record",
                extra={
                    "header": f"replaying table {table.name!r}: {p.get('device_name') or p.get('device')}, "
                              f"{p.get('cpu', '')}, recorded {p.get('date', '?')} ({table.path.name})",
                    "table": str(table.path),
                    "best_config": self.truth.best_config,
                    "p_feasible": {k: t.p_feasible for k, t in self.truth.configs.items()},
                },
            ),
        )

        self.metadata = replace(self.metadata, penalty=worst_feasible(self))  # judged like evaluate()

    def signature_extra(self) -> Any:
        return {"table_space": self.table.header.get("space_signature"),
                "table_date": self.table.provenance.get("date"),
                "n_measurements": sum(len(v) for v in self.table.measurements.values())}

    def p_feasible(self, config: Mapping[str, Any]) -> float:
        """The probability that ``config`` is feasible under this scenario (share of feasible repeats)."""
        truth = self.truth.configs.get(self.space.key(config))
        return truth.p_feasible if truth else 0.0

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        context = context or EvalContext()
        key = self.space.key(config)
        repeats = self.table.repeats(key)
        if not repeats:  # cannot happen for a validated config of a complete table
            raise TableError(f"table {self.table.name} has no measurement of {dict(config)}")
        data = dict(repeats[_pick(context.seed, context.trial, key, len(repeats))])
        factor = 3.0 if context.feasible_found else 5.0
        data = replay_early_stop(data, factor * self.scenario.latency_cap_ms)
        return measurement_to_outcome(self, data)


def replay_early_stop(data: Mapping[str, Any], threshold_ms: float) -> dict:
    """The recorded measurement as a live run with early-stop threshold ``threshold_ms`` would have
    returned it (see the module docstring)."""
    from ..live.profiler import early_stop_view
    from ..live.timing import early_stop_index

    data = dict(data)
    if data.get("status") not in ("ok", "early_stopped"):
        return data
    metrics = dict(data.get("metrics") or {})
    stages = dict(data.get("stages") or {})
    latencies = list(data.get("latencies_ms") or ())
    if latencies:
        n = early_stop_index(latencies, threshold_ms, EARLY_STOP_MIN_ITERS)
        if n is None:
            if data["status"] == "early_stopped":  # recorded with a lower threshold than this scenario's
                n = len(latencies)
            else:
                return data
        estimate = statistics.median(latencies[:n])
        timed_s = sum(latencies[:n]) / 1000.0
    else:  # format 1: no per-iteration timings; the recorded median stands for the sequence
        median = metrics.get("latency_p50_ms") or metrics.get("early_stop_estimate_ms")
        if data["status"] == "ok" and (median is None or median <= threshold_ms):
            return data
        n = EARLY_STOP_MIN_ITERS
        estimate = median
        timed_s = n * float(median or 0.0) / 1000.0
    if data["status"] == "ok" or latencies:
        before = sum(float(stages.get(k) or 0.0) for k in _BEFORE_TIMING)
        if not latencies and not any(k in stages for k in ("spawn_teardown_s", "prepare_s")):
            before = float(data.get("cost_s") or 0.0) - float(stages.get("measure_s") or 0.0) \
                - float(stages.get("accuracy_s") or 0.0)
        data["cost_s"] = max(0.0, before + timed_s)
        stages = {k: v for k, v in stages.items() if k in _BEFORE_TIMING}
        stages["measure_s"] = round(timed_s, 4)
    view = early_stop_view(metrics)
    view.update(early_stop_estimate_ms=estimate, early_stop_threshold_ms=threshold_ms, n_timed_iters=n)
    data.update(status="early_stopped", metrics=view, stages=stages, latencies_ms=latencies[:n])
    return data


def build_replay_task(scenario: str, target: str) -> ReplayTask:
    """The scenario replayed from the shipped table ``target`` (``cpu``, ``h100``) or a table path."""
    path: Path = resolve_table(target)
    return ReplayTask(scenario, load_table(path), target)


class RecommendationTrulyFeasible:
    """Leaderboard column for replay targets: how often the configuration a run recommends (its best
    feasible observation) is feasible in truth, i.e. the table's feasibility probability of that
    configuration under the scenario (share of its recorded repeats that meet every cap), averaged over
    seeds; a seed that recommends nothing counts 0. A lucky repeat of a configuration that is usually
    too slow scores low here even though the run saw it as feasible (stochastic feasibility near a cap,
    as described in "Hidden Device Heterogeneity in Constrained ML Deployment", Lysenstøen 2026). ``None`` for tasks that are not replayed from a table."""

    name = "rec. truly feasible"
    description = ("mean over seeds of P(feasible) of the recommended configuration, from the recorded repeats "
                   "(replay targets only; no recommendation = 0)")

    def compute(self, cases: Any) -> float | None:
        tasks: dict[tuple[str, str], ReplayTask | None] = {}
        values = []
        for case in cases:
            ident = (case.task, case.target)
            if case.target in ("live", "analytic", ""):
                return None
            if ident not in tasks:
                try:
                    tasks[ident] = build_replay_task(case.task, case.target)
                except (TableError, KeyError, ValueError):
                    tasks[ident] = None
            task = tasks[ident]
            if task is None:
                return None
            if case.best_config is None or not task.space.is_valid(case.best_config):
                values.append(0.0)
            else:
                values.append(task.p_feasible(case.best_config))
        return sum(values) / len(values) if values else None


def leaderboard_metrics() -> list[Any]:
    """The replay-specific leaderboard columns (registered by the deployment task plugin)."""
    return [RecommendationTrulyFeasible()]
