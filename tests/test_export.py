"""``deploybench export`` and ``table export``: the files read back with pyarrow, DuckDB and the csv
module hold every trial, and the leaderboard's number is one GROUP BY away."""

from __future__ import annotations

import builtins
import csv
import json

import pytest

from deploybench.export import EXPORT_SCHEMA, ExportError, TRIAL_COLUMNS, write_rows
from deploybench.results import read_case_file
from deploybench.scoring.summary import summarize
from deploybench.device_tables.table import load_table, resolve_table

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
duckdb = pytest.importorskip("duckdb")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Two optimizers on a replayed table, a seed that finds nothing among them (the penalty matters)."""
    from deploybench.plugins import create_plugin_manager
    from deploybench.runner import Case, RunOptions, run_case

    out = tmp_path_factory.mktemp("export") / "r"
    pm = create_plugin_manager()
    for optimizer in ("tba", "random"):
        for seed in range(4):
            case = Case(task="edge_tight", target="edge", task_label="edge_tight@edge", optimizer=optimizer,
                        seed=seed, budget=12, kind="replay")
            run_case(case, RunOptions(out_dir=str(out)), pm)
    return out


def test_trial_rows_hold_every_trial_and_read_back_with_pyarrow_and_duckdb(results, cli, tmp_path):
    path = tmp_path / "trials.parquet"
    proc = cli("export", str(results), "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    files = sorted(results.rglob("seed_*.jsonl"))
    n_trials = sum(len(read_case_file(f).trials) for f in files)
    table = pq.read_table(path)
    assert table.num_rows == n_trials == 8 * 12
    assert table.column_names[:len(TRIAL_COLUMNS)] == list(TRIAL_COLUMNS)
    assert {"config.model", "config.backend", "metric.latency_p95_ms"} <= set(table.column_names)
    assert table.schema.metadata[b"deploybench_export_schema"] == str(EXPORT_SCHEMA).encode()
    con = duckdb.connect()
    per_case = con.execute(f"select optimizer, seed, count(*) n, max(cumulative_cost_s) cost from '{path}' "
                       "group by all order by all").fetchall()
    assert len(per_case) == 8 and all(n == 12 for _, _, n, _ in per_case)
    # best_so_far is the running best of the feasible trials, the leaderboard's curve
    for f in files:
        case = read_case_file(f)
        best = max((t["outcome"]["objective"] for t in case.trials if t["outcome"]["status"] == "ok"), default=None)
        got = con.execute(f"select best_so_far from '{path}' where optimizer = '{case.header['optimizer']}' and "
                      f"seed = {case.header['seed']} order by trial desc limit 1").fetchone()[0]
        assert got == best


def test_case_rows_reproduce_the_leaderboard_best_with_one_group_by(results, cli, tmp_path):
    path = tmp_path / "cases.parquet"
    assert cli("export", str(results), "--cases", "--out", str(path)).returncode == 0
    rows = dict(duckdb.execute(f"select optimizer_label, avg(score) from '{path}' group by all").fetchall())
    (group,) = summarize([results], statistics=False)
    assert rows == pytest.approx({r.label: r.best.mean for r in group.rows}, rel=1e-12)
    assert any(c.best is None for r in group.rows for c in r.cases)  # the penalty was exercised
    found = duckdb.execute(f"select count(*) filter (where found), count(*) from '{path}'").fetchone()
    assert found[1] == 8 and found[0] == sum(c.best is not None for r in group.rows for c in r.cases)


def test_csv_needs_no_extra_and_holds_the_same_rows(results, cli, tmp_path):
    path = tmp_path / "trials.csv"
    assert cli("export", str(results), "--out", str(path)).returncode == 0
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 96 and rows[0]["task_label"] == "edge_tight@edge"
    assert all(isinstance(json.loads(r["optimizer_params"]), dict) for r in rows)
    assert {r["optimizer"] for r in rows} == {"tba", "random"} and {r["status"] for r in rows} >= {"ok", "crashed"}


def test_bad_input_and_a_missing_pyarrow_say_what_to_do(results, cli, tmp_path, monkeypatch):
    proc = cli("export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.parquet"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = cli("export", str(results), "--out", str(tmp_path / "x"), "--format", "xlsx")
    assert proc.returncode == 2 and "invalid choice: 'xlsx'" in proc.stderr
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ExportError, match=r'pip install "\.\[export\]" in the deploybench checkout \(or use --format csv\)'):
        write_rows([{"a": 1}], tmp_path / "y.parquet", "parquet", ("a",))


def test_a_recorded_table_exports_one_row_per_served_measurement(cli, tmp_path):
    path = tmp_path / "edge.parquet"
    proc = cli("table", "export", "edge", "--out", str(path))
    assert proc.returncode == 0, proc.stderr
    table = load_table(resolve_table("edge"))
    served = sum(len(v) for v in table.measurements.values())
    counts = dict(duckdb.execute(f"select status, count(*) from '{path}' group by all").fetchall())
    assert sum(counts.values()) == served and counts.get("crashed", 0) > 0
    assert duckdb.execute(f"select count(distinct key) from '{path}'").fetchone()[0] == len(table.measurements)
