"""Device heterogeneity from a fleet recording: per-node levels, spread near a cap, flip rates between and
within nodes (hand-computed on a small table), the CLI report, and packing one node's view."""

from __future__ import annotations

import json

import pytest

from deploybench.cli.main import main
from deploybench.device_tables.heterogeneity import heterogeneity
from deploybench.device_tables.table import LOCAL_NODE, grid_space, load_table, node_name, pack_tables
from deploybench.tasks.deployment import scenarios

SPACE = grid_space(["mobilenet_v2"], ["onnxruntime"], ["fp32"], [1, 8], [1], graph_optimizations=["all"])


def _config(batch: int) -> dict:
    return {"model": "mobilenet_v2", "backend": "onnxruntime", "precision": "fp32", "batch_size": batch, "threads": 1,
            "graph_optimization": "all"}


def _line(batch: int, p95: float, node: str | None, gemm: float) -> dict:
    metrics = {"latency_p95_ms": p95, "latency_p99_ms": p95, "memory_peak_mb": 100.0, "accuracy": 0.7,
               "throughput_sps": 100.0}
    line = {"type": "measurement", "key": SPACE.key(_config(batch)), "config": _config(batch), "repeat": 0, "pass": 0,
            "speed_reference": {"version": 1, "gemm_ms": gemm, "python_ms": 2 * gemm},
            "measurement": {"status": "ok", "metrics": metrics, "cost_s": 1.0}}
    if node:
        line["node"] = {"id": f"{node}-id", "host": "h", "label": node}
    return line


@pytest.fixture
def fleet_table(tmp_path):
    """batch 1 near edge_tight's 20 ms cap: node a 18, 19 ms (feasible twice), node b 21, 19 ms (one of
    each); batch 8 far from every cap (60 ms) on both nodes."""
    header = {"type": "table", "format_version": 2, "name": "fleet", "space": SPACE.to_json(),
              "space_signature": SPACE.signature(), "provenance": {"device": "cpu", "device_name": "test"}}
    lines = [_line(1, 18.0, "a", 1.0), _line(1, 19.0, "a", 1.0), _line(1, 21.0, "b", 1.5), _line(1, 19.0, "b", 1.5),
             _line(8, 60.0, "a", 1.0), _line(8, 61.0, "b", 1.5)]
    path = tmp_path / "fleet.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [header, *lines]) + "\n")
    return path


def test_flip_rates_and_spread_are_counted_over_pairs_near_the_cap(fleet_table):
    report = heterogeneity(load_table(fleet_table), list(scenarios().values()))
    assert [(n.node, n.measurements, n.configurations, n.gemm_ms) for n in report.nodes] == \
        [("a", 3, 2, 1.0), ("b", 3, 2, 1.5)]
    assert report.shared_configurations == 2
    edge = next(s for s in report.scenarios if s.scenario == "edge_tight")
    # only batch 1 is near the 20 ms cap; node medians 18.5 and 20 -> spread 20 / 18.5
    assert edge.configurations_near_cap == 1 and edge.median_spread == pytest.approx(20 / 18.5)
    # verdicts a: T, T; b: F (21 > 20), T. Across: (T,F) (T,T) (T,F) (T,T) -> 2 of 4; within: a (T,T), b (F,T) -> 1 of 2
    assert (edge.between_pairs, edge.between_node_flip) == (4, 0.5)
    assert (edge.within_pairs, edge.within_node_flip) == (2, 0.5)
    server = next(s for s in report.scenarios if s.scenario == "server_throughput")  # 100 ms p99: nothing near
    assert server.configurations_near_cap == 0 and server.between_node_flip is None


def test_a_single_machine_table_has_one_node_and_says_so(fleet_table, tmp_path, capsys):
    lines = fleet_table.read_text().splitlines()
    plain = [lines[0]] + [json.dumps({k: v for k, v in json.loads(x).items() if k != "node"}) for x in lines[1:]]
    path = tmp_path / "plain.jsonl"
    path.write_text("\n".join(plain) + "\n")
    report = heterogeneity(load_table(path), list(scenarios().values()))
    assert [n.node for n in report.nodes] == [LOCAL_NODE] and report.shared_configurations == 0
    assert main(["table", "heterogeneity", str(path)]) == 0
    assert "one node: nothing to compare" in capsys.readouterr().out


def test_cli_reports_nodes_and_packs_one_nodes_view(fleet_table, tmp_path, capsys):
    assert main(["table", "heterogeneity", str(fleet_table), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [n["node"] for n in data["nodes"]] == ["a", "b"]
    assert main(["table", "info", str(fleet_table)]) == 0
    assert "measured on 2 nodes: a (3), b (3)" in capsys.readouterr().out
    out = tmp_path / "a.jsonl"
    assert main(["table", "pack", str(fleet_table), "--node", "a", "--out", str(out)]) == 0
    packed = load_table(out)
    assert {node_name(e) for extras in packed.extras.values() for e in extras} == {"a"}
    assert sum(len(v) for v in packed.measurements.values()) == 3 and packed.provenance["node"] == "a"
    assert main(["table", "pack", str(fleet_table), "--node", "c", "--out", str(out)]) == 2
    assert "unknown node 'c'; known nodes: a, b" in capsys.readouterr().err


def test_pooled_packing_keeps_every_nodes_repeats(fleet_table):
    result = pack_tables([load_table(fleet_table)], name="pooled")
    assert sorted(node_name(r) for r in result.records) == ["a", "a", "a", "b", "b", "b"]
