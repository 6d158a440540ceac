"""Device heterogeneity: how nominally identical machines of one device differ on the same configurations.

A table recorded on a fleet (``deploybench record --executor ray``) stores, with each measurement, the
node that measured it and that node's speed reference for the pass. When a configuration was measured
on several nodes, two questions matter to an optimizer judged against the table's caps:

- how far apart are the nodes' latencies near a cap (the spread: the slowest node's median over the
  fastest's, per configuration), and
- how often would two nodes disagree on feasibility: the *between-node flip rate*, the share of pairs
  of measurements of one configuration from two different nodes whose verdicts under a scenario differ,
  beside the *within-node flip rate*, the same over pairs from one node (the noise a single machine
  already has). A between-node rate well above the within-node rate is hidden heterogeneity.

Both rates are over configurations near a cap (median of the scenario's latency metric within ±30 % of
it): far from a cap every pair agrees, and counting those pairs would only dilute the rates.

Replay serves the pooled view (every node's repeats of a configuration together): a table stands for a
device kind, and an optimizer deployed to that kind meets whichever node it gets. A node's own view is
one ``deploybench table pack CHUNK --node LABEL`` away.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from .recording import NEAR_CAP
from .table import LOCAL_NODE, Table, _repeat_feasible, node_name

__all__ = ["node_name", "NodeLevel", "ScenarioSpread", "HeterogeneityReport", "heterogeneity", "LOCAL_NODE"]

@dataclass
class NodeLevel:
    """One node: how many measurements it made and its speed level (median reference workload times)."""

    node: str
    measurements: int
    configurations: int
    gemm_ms: float | None
    python_ms: float | None


@dataclass
class ScenarioSpread:
    """One scenario's view of the nodes' disagreement near its latency cap."""

    scenario: str
    metric: str
    cap: float
    configurations_near_cap: int  # near the cap and measured on at least two nodes
    median_spread: float | None  # slowest node's median / fastest node's, per configuration, median over them
    max_spread: float | None
    between_node_flip: float | None
    between_pairs: int
    within_node_flip: float | None
    within_pairs: int


@dataclass
class HeterogeneityReport:
    table: str
    nodes: list[NodeLevel] = field(default_factory=list)
    shared_configurations: int = 0  # measured on at least two nodes
    scenarios: list[ScenarioSpread] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        from tabulate import tabulate

        def num(v: float | None, fmt: str = ".3f") -> str:
            return "-" if v is None else format(v, fmt)

        out = [f"table {self.table}: {len(self.nodes)} node(s), {self.shared_configurations} configurations "
               "measured on two or more"]
        out += tabulate([[n.node, n.measurements, n.configurations, num(n.gemm_ms), num(n.python_ms)]
                         for n in self.nodes],
                        headers=["node", "measurements", "configurations", "speed: gemm ms", "python ms"]).splitlines()
        if len(self.nodes) < 2:
            out.append("one node: nothing to compare (record on a fleet: deploybench record --executor ray)")
            return out
        out.append("")
        out += tabulate([[s.scenario, f"{s.metric} <= {s.cap:g}", s.configurations_near_cap, num(s.median_spread),
                          num(s.max_spread), num(s.between_node_flip), s.between_pairs, num(s.within_node_flip),
                          s.within_pairs] for s in self.scenarios],
                        headers=["scenario", "cap", "configs near cap", "spread (median)", "spread (max)",
                                 "flip between nodes", "pairs", "flip within a node", "pairs"]).splitlines()
        out.append(f"spread: slowest node's median {'/'} fastest node's, per configuration near the cap (±"
                   f"{int(NEAR_CAP * 100)} %); flip: share of pairs of measurements of one configuration whose "
                   "feasibility verdicts differ")
        return out


def _median(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if isinstance(v, (int, float))]
    return statistics.median(kept) if kept else None


def _flip(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    return sum(a != b for a, b in pairs) / len(pairs) if pairs else None


def heterogeneity(table: Table, scenarios: Sequence[Any]) -> HeterogeneityReport:
    """Per-node levels and, per scenario, spread and flip rates near its cap (see the module docstring)."""
    per_node: dict[str, dict[str, list[tuple[dict, dict]]]] = {}  # node -> key -> [(measurement, extra)]
    for key, reps in table.measurements.items():
        extras = table.extras.get(key) or [{}] * len(reps)
        for m, extra in zip(reps, extras):
            per_node.setdefault(node_name(extra), {}).setdefault(key, []).append((m, extra))
    report = HeterogeneityReport(table=table.name)
    for node, by_key in sorted(per_node.items()):
        refs = [e.get("speed_reference") or {} for items in by_key.values() for _, e in items]
        report.nodes.append(NodeLevel(node, sum(len(v) for v in by_key.values()), len(by_key),
                                      _median(r.get("gemm_ms") for r in refs),
                                      _median(r.get("python_ms") for r in refs)))
    shared = [k for k in table.measurements if sum(k in by_key for by_key in per_node.values()) >= 2]
    report.shared_configurations = len(shared)
    for scenario in scenarios:
        metric, cap = scenario.latency_metric, float(scenario.latency_cap_ms)
        caps = [(c.metric, c.cap) for c in scenario.constraints]
        spreads: list[float] = []
        between: list[tuple[bool, bool]] = []
        within: list[tuple[bool, bool]] = []
        near = 0
        for key in shared:
            values = [(m.get("metrics") or {}).get(metric) for m in table.measurements[key]]
            centre = _median(values)
            if centre is None or abs(centre - cap) > NEAR_CAP * cap:
                continue
            near += 1
            node_medians = [_median((m.get("metrics") or {}).get(metric) for m, _ in by_key[key])
                            for by_key in per_node.values() if key in by_key]
            node_medians = [v for v in node_medians if v]
            if len(node_medians) >= 2:
                spreads.append(max(node_medians) / min(node_medians))
            verdicts = [(node, _repeat_feasible(m, caps)) for node, by_key in per_node.items()
                        for m, _ in by_key.get(key, [])]
            for (n1, v1), (n2, v2) in itertools.combinations(verdicts, 2):
                (within if n1 == n2 else between).append((v1, v2))
        report.scenarios.append(ScenarioSpread(
            scenario=scenario.name, metric=metric, cap=cap, configurations_near_cap=near,
            median_spread=_median(spreads), max_spread=max(spreads) if spreads else None,
            between_node_flip=_flip(between), between_pairs=len(between),
            within_node_flip=_flip(within), within_pairs=len(within)))
    return report
