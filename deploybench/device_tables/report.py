"""What a recorded table holds, as data: ``deploybench table info`` prints it, ``--json`` dumps it.

:func:`table_summary` returns plain JSON-safe dicts: provenance, coverage, statuses, the crash
structure of the grid (share of configurations that crashed or timed out, per kind), cost, noise near
the caps, memory footprint against parameter bytes, and per scenario the feasible share, the optimum,
how many configurations tie it, and Clopper-Pearson intervals of P(feasible) for the configurations
whose feasibility is uncertain.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from typing import Any, Mapping

from .recording import NEAR_CAP, near_memory_boundary, repeats_to_record, table_device_mb
from .table import Table, ground_truth, node_name

__all__ = ["table_summary", "clopper_pearson", "crash_dependence", "memory_boundary"]

_TIE_TOLERANCE = 1e-9


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion ``k / n``."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _config_crash(reps: list[Mapping[str, Any]]) -> str | None:
    """The crash kind of a configuration whose every repeat crashed or timed out, else None."""
    kinds = [(m.get("error") or {}).get("kind", "runtime") for m in reps if m.get("status") in ("crashed", "timeout")]
    if reps and len(kinds) == len(reps):
        return Counter(kinds).most_common(1)[0][0]
    return None


def _noise_near_cap(table: Table, scenario: Any) -> list[float]:
    out = []
    for key in table.grid_keys():
        vals = [(m.get("metrics") or {}).get(scenario.latency_metric) for m in table.measurements.get(key) or []
                if m.get("status") == "ok"]
        vals = [v for v in vals if v is not None]
        if len(vals) >= 2 and abs(statistics.median(vals) - scenario.latency_cap_ms) <= NEAR_CAP * scenario.latency_cap_ms:
            out.append(statistics.pstdev(vals) / statistics.mean(vals))
    return out


def _near_cap_repeats(table: Table, scenario: Any) -> list[list[tuple[float, Any]]]:
    """Per configuration whose median lies within ±NEAR_CAP of the cap: (latency, recording pass) of each ok repeat."""
    out = []
    for key in table.grid_keys():
        extras = table.extras.get(key) or []
        pairs = [((m.get("metrics") or {}).get(scenario.latency_metric), (extras[i] if i < len(extras) else {}).get("pass"))
                 for i, m in enumerate(table.measurements.get(key) or []) if m.get("status") == "ok"]
        pairs = [(float(v), p) for v, p in pairs if v is not None]
        if len(pairs) >= 2 and abs(statistics.median(v for v, _ in pairs) - scenario.latency_cap_ms) \
                <= NEAR_CAP * scenario.latency_cap_ms:
            out.append(pairs)
    return out


def pass_speed_levels(table: Table, scenario: Any) -> dict:
    """How much of the noise near a cap is the machine's speed drifting between recording passes.

    Passes are hours or sessions apart; a pass's *level* is the median ratio of its repeats to their
    configuration's median. The CV after dividing each repeat by its pass's level is what is left for a
    fresh process within one pass. Tables without pass numbers (format 1) give empty levels."""
    rows = _near_cap_repeats(table, scenario)
    ratios: dict[Any, list[float]] = defaultdict(list)
    for pairs in rows:
        med = statistics.median(v for v, _ in pairs)
        for v, p in pairs:
            if p is not None:
                ratios[p].append(v / med)
    levels = {p: statistics.median(r) for p, r in ratios.items()}
    residual = []
    for pairs in rows:
        if all(p in levels for _, p in pairs):
            vals = [v / levels[p] for v, p in pairs]
            residual.append(statistics.pstdev(vals) / statistics.mean(vals))
    return {"levels": {str(p): round(levels[p], 3) for p in sorted(levels)},
            "cv_within_pass_median": round(statistics.median(residual), 4) if residual else None}


def _is_oom(m: Mapping[str, Any]) -> bool:
    return m.get("status") == "crashed" and (m.get("error") or {}).get("kind") == "oom"


def crash_dependence(table: Table) -> dict:
    """How much of the crash structure a lookup explains, and where out-of-memory depends on the batch.

    - ``decided_by_triple``: crashed configurations (every repeat crashed or timed out) whose whole
      (model, backend, precision) crashes with the same kind at every batch size, thread count and knob:
      a lookup on the triple predicts them; their share of the crashed configurations of triples measured
      at every grid configuration (a partly recorded triple cannot say: ``crashed_in_incomplete_triples``);
    - ``batch_dependent_oom_triples``: triples that run (P(ok) >= 0.5) at some batch size and are ``oom``
      (P(oom) >= 0.5) at a larger one."""
    groups: dict[tuple, list[tuple[dict, list]]] = defaultdict(list)
    complete: dict[tuple, bool] = {}
    for key, config in zip(table.grid_keys(), table.space.grid()):
        triple = (config["model"], config["backend"], config["precision"])
        reps = table.measurements.get(key)
        complete[triple] = complete.get(triple, True) and bool(reps)
        if reps:
            groups[triple].append((table.configs[key], reps))
    crashed = by_triple = incomplete = 0
    batch_oom = []
    for triple, members in sorted(groups.items()):
        kinds = [_config_crash(reps) for _, reps in members]
        n_crashed = sum(k is not None for k in kinds)
        if not complete[triple]:
            incomplete += n_crashed
        else:
            crashed += n_crashed
            if n_crashed == len(members) and len(set(kinds)) == 1:
                by_triple += n_crashed
        runs = [int(c["batch_size"]) for c, reps in members
                if sum(m.get("status") == "ok" for m in reps) >= 0.5 * len(reps)]
        ooms = [int(c["batch_size"]) for c, reps in members if sum(_is_oom(m) for m in reps) >= 0.5 * len(reps)]
        if runs and ooms and min(runs) < max(ooms):
            batch_oom.append({"model": triple[0], "backend": triple[1], "precision": triple[2],
                              "runs_at_batch": sorted(set(runs)), "oom_at_batch": sorted(set(ooms))})
    return {"crashed_configurations": crashed, "crashed_in_incomplete_triples": incomplete,
            "decided_by_triple": by_triple,
            "decided_by_triple_share": round(by_triple / crashed, 4) if crashed else None,
            "batch_dependent_oom_triples": batch_oom}


def memory_boundary(table: Table) -> dict:
    """Configurations at the device's memory boundary: P(oom) over their repeats with a Clopper-Pearson
    interval, for every configuration with an ``oom`` repeat and a repeat that ran, and how many
    configurations the recorder treated as near the boundary."""
    device_mb = table_device_mb(table)
    near, flips = 0, []
    for key in table.grid_keys():
        reps = table.measurements.get(key) or []
        if not reps:
            continue
        near += any(near_memory_boundary(m, device_mb) for m in reps)
        k = sum(_is_oom(m) for m in reps)
        if 0 < k < len(reps):
            lo, hi = clopper_pearson(k, len(reps))
            flips.append({"config": dict(table.configs[key]), "oom": k, "repeats": len(reps),
                          "p_oom": round(k / len(reps), 3), "ci95": [round(lo, 3), round(hi, 3)]})
    return {"device_mb": device_mb, "configs_near_boundary": near, "configs_flipping": len(flips),
            "flipping": sorted(flips, key=lambda f: -f["p_oom"])}


def _memory_rows(table: Table) -> list[dict]:
    """Median deployment footprint per (model, backend, precision) beside parameter and artefact sizes."""
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for key in table.grid_keys():
        config = table.configs.get(key)
        if not config:
            continue
        g = groups[(config["model"], config["backend"], config["precision"])]
        for m in table.measurements.get(key) or []:
            metrics = m.get("metrics") or {}
            for name in ("memory_peak_mb", "param_mb", "artefact_mb", "memory_prepare_peak_mb",
                         "memory_device_peak_mb", "memory_baseline_mb"):
                if metrics.get(name) is not None:
                    g[name].append(float(metrics[name]))
    rows = []
    for (model, backend, precision), g in sorted(groups.items()):
        if not g.get("memory_peak_mb"):
            continue
        rows.append({"model": model, "backend": backend, "precision": precision,
                     "deploy_mb_median": round(statistics.median(g["memory_peak_mb"]), 1),
                     "deploy_mb_min": round(min(g["memory_peak_mb"]), 1),
                     "deploy_mb_max": round(max(g["memory_peak_mb"]), 1),
                     "param_mb": round(statistics.median(g["param_mb"]), 1) if g.get("param_mb") else None,
                     "artefact_mb": round(statistics.median(g["artefact_mb"]), 1) if g.get("artefact_mb") else None,
                     "prepare_peak_mb": round(statistics.median(g["memory_prepare_peak_mb"]), 1)
                     if g.get("memory_prepare_peak_mb") else None,
                     # what the device held (runtime included), where the table records it (v3)
                     "device_held_mb_max": round(max(g["memory_device_peak_mb"]), 1)
                     if g.get("memory_device_peak_mb") else None,
                     "runtime_baseline_mb": round(statistics.median(g["memory_baseline_mb"]), 1)
                     if g.get("memory_baseline_mb") else None})
    return rows


def _scenario(table: Table, scenario: Any) -> dict:
    truth = ground_truth(table, scenario)
    sign = scenario.objective.sign
    ties = []
    if truth.optimum is not None:
        ties = [t.key for t in truth.configs.values()
                if t.p_feasible >= 0.5 and t.objective is not None
                and abs(sign * t.objective - sign * truth.optimum) <= _TIE_TOLERANCE * max(1.0, abs(truth.optimum))]
    uncertain = []
    for t in sorted(truth.configs.values(), key=lambda t: -t.p_feasible):
        if 0.0 < t.p_feasible < 1.0:
            k = round(t.p_feasible * t.n)
            lo, hi = clopper_pearson(k, t.n)
            uncertain.append({"config": dict(t.config), "feasible": k, "repeats": t.n, "p_feasible": round(t.p_feasible, 3),
                              "ci95": [round(lo, 3), round(hi, 3)],
                              "objective": None if t.objective is None else round(t.objective, 6)})
    best_ci = None
    if truth.best_key:
        bt = truth.configs[truth.best_key]
        best_ci = [round(v, 3) for v in clopper_pearson(round(bt.p_feasible * bt.n), bt.n)]
    near = _noise_near_cap(table, scenario)
    unknown = sum(1 for key in table.grid_keys() for m in table.measurements.get(key) or []
                  if m.get("status") == "ok" and (m.get("metrics") or {}).get("accuracy_unknown"))
    return {
        "scenario": scenario.name,
        "caps": {c.metric: c.cap for c in scenario.constraints},
        "objective": {"metric": scenario.objective.metric, "direction": scenario.objective.direction},
        "feasible_share": round(truth.feasible_share, 4),
        "configs_uncertain": len(uncertain),
        "optimum": truth.optimum,
        "optimum_ties": len(ties),
        "best_config": dict(truth.best_config) if truth.best_config else None,
        "best_p_feasible_ci95": best_ci,
        "uncertain": uncertain,
        "latency_cv_near_cap": {"configs": len(near), "median": round(statistics.median(near), 4) if near else None,
                                "max": round(max(near), 4) if near else None},
        "pass_speed_levels": pass_speed_levels(table, scenario),
        "measurements_with_unknown_accuracy": unknown if scenario.objective.metric == "accuracy" else None,
    }


def _speed_levels(table: Table) -> list[dict]:
    from ..live.drift import pass_levels

    return pass_levels(table)


def _redo_kind(reason: str) -> str:
    """The guard that asked for a redo: ``burst`` (slow tail iterations coincided with other work),
    ``waiting`` (the threads waited for a CPU), ``average`` (the window's average other work)."""
    if reason.startswith("burst"):
        return "burst"
    if reason.startswith("waited"):
        return "waiting"
    return "average"


def repeats_wanted_near_cap(provenance: dict) -> int | None:
    """The clean repeats near a cap that the recording policy asks for (``"... 5 clean repeats ..."`` in
    ``repeats_policy``), or None for a table recorded without such a policy (format 1)."""
    match = re.search(r"(\d+) clean repeats", str(provenance.get("repeats_policy") or ""))
    return int(match.group(1)) if match else None


def _still_to_record(table: Table, covered: int, grid: int, costs: list[float]) -> dict | None:
    """What a resumed recording still has to measure under the table's own repeat policy, and about how
    long that takes at the median cost per measurement so far (None when the policy is unknown)."""
    wanted = repeats_wanted_near_cap(table.provenance)
    if wanted is None:
        return None
    configs, repeats = repeats_to_record(table, wanted)
    unmeasured = grid - covered
    median = statistics.median(costs) if costs else 0.0
    return {"unmeasured_configurations": unmeasured, "configurations_needing_repeats": configs,
            "repeats": repeats, "estimated_s": round((unmeasured + repeats) * median, 1)}


def table_summary(table: Table) -> dict:
    """Everything ``deploybench table info`` reports about ``table``, as JSON-safe data."""
    from ..tasks.deployment import scenarios

    covered, grid = table.coverage()
    keys = [k for k in table.grid_keys() if table.measurements.get(k)]
    statuses: Counter = Counter()
    kinds: Counter = Counter()
    mechanisms: Counter = Counter()
    accountings: Counter = Counter()
    redo_reasons: Counter = Counter()
    costs, per_config, loads, redone = [], [], [], 0
    crash_kinds: Counter = Counter()
    nodes: Counter = Counter()
    for key in keys:
        reps = table.measurements[key]
        per_config.append(sum(float(m.get("cost_s") or 0.0) for m in reps))
        kind = _config_crash(reps)
        if kind:
            crash_kinds[kind] += 1
        for m, extra in zip(reps, table.extras.get(key) or [{}] * len(reps)):
            statuses[m["status"]] += 1
            costs.append(float(m.get("cost_s") or 0.0))
            redone += max(0, int(m.get("attempts") or 1) - 1)
            for why in ((m.get("metrics") or {}).get("contention") or {}).get("redone_for") or []:
                redo_reasons[_redo_kind(str(why))] += 1
            if m.get("error"):
                kinds[m["error"].get("kind", "?")] += 1
            mech = (m.get("metrics") or {}).get("memory_limit_mechanism")
            if mech:
                mechanisms[mech] += 1
                default = "rss+file" if mech == "watchdog" else "cgroup-charge (v2 table)"
                accountings[(m.get("metrics") or {}).get("memory_accounting") or default] += 1
            if extra.get("load_avg_1m") is not None:
                loads.append(float(extra["load_avg_1m"]))
            nodes[node_name(extra)] += 1
    n = sum(statuses.values())
    repeats = Counter(len(table.measurements[k]) for k in keys)
    p = table.provenance
    limits = Counter(extra.get("time_limit_s", p.get("time_limit_s"))
                     for key in keys for extra in (table.extras.get(key) or []))
    return {
        "name": table.name,
        "file": str(table.path),
        "format_version": table.header.get("format_version"),
        "provenance": p,
        "grid": {"configurations": grid, "measured": covered, "complete": covered == grid,
                 "space_signature": table.header.get("space_signature")},
        "measurements": n,
        "contaminated_not_served": table.contaminated,
        "redone_by_contention_guard": redone,
        "redone_for": dict(redo_reasons.most_common()),
        "problems": list(table.problems),
        "off_grid_measurements": table.off_grid(),
        "statuses": dict(statuses.most_common()),
        "error_kinds": dict(kinds.most_common()),
        "crash_structure": {"configurations_crashed_or_timed_out": sum(crash_kinds.values()),
                            "share_of_grid": round(sum(crash_kinds.values()) / max(covered, 1), 4),
                            "per_kind": {k: {"configurations": v, "share_of_grid": round(v / max(covered, 1), 4)}
                                         for k, v in crash_kinds.most_common()}},
        "memory_limit_mechanisms": dict(mechanisms),
        "memory_accountings": dict(accountings),
        "crash_dependence": crash_dependence(table),
        "memory_boundary": memory_boundary(table),
        "speed_levels": _speed_levels(table),
        "nodes": dict(sorted(nodes.items())),
        "time_limits_s": {str(k): v for k, v in limits.items()},
        "repeats_per_configuration": {str(k): v for k, v in sorted(repeats.items())},
        "still_to_record": _still_to_record(table, covered, grid, costs),
        "cost": {"total_s": round(sum(costs), 1),
                 "per_measurement_median_s": round(statistics.median(costs), 2) if costs else None,
                 "per_measurement_max_s": round(max(costs), 2) if costs else None,
                 "per_configuration_median_s": round(statistics.median(per_config), 2) if per_config else None},
        "load_avg_1m": {"median": round(statistics.median(loads), 2), "max": round(max(loads), 2)} if loads else None,
        "memory": _memory_rows(table),
        "scenarios": [_scenario(table, s) for s in scenarios().values()] if n else [],
    }
