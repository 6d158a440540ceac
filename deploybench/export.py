"""Results as a table for pandas, polars or DuckDB: one row per trial, or one per case.

Analysts of benchmark results work on columnar files (benchopt, CARP-S and Syne Tune's blackbox
repository write Parquet), not on thousands of small JSONL case files. :func:`trial_rows` and
:func:`case_rows` flatten case files into rows with a fixed, versioned schema (:data:`EXPORT_SCHEMA`,
documented in docs/export.md); :func:`write_rows` writes them as Parquet (pyarrow, the ``[export]``
extra) or CSV (no extra dependency).

The case rows carry ``score``, the number the leaderboard averages: the seed's best feasible objective,
or the task's penalty when the seed found nothing. Their mean per (table, optimizer) is the
leaderboard's "best" column, so one ``GROUP BY`` reproduces it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from . import direction as direction_
from .outcome import counts_as_found
from .results import read_case_file
from .scoring.summary import summarize

__all__ = ["EXPORT_SCHEMA", "TRIAL_COLUMNS", "CASE_COLUMNS", "TABLE_COLUMNS", "trial_rows", "case_rows",
           "table_rows", "write_rows", "ExportError"]

#: version of the column layout below; bumped when a column changes meaning or is removed
EXPORT_SCHEMA = 1

#: identity columns shared by trial and case rows
_IDENTITY = ("task", "task_label", "task_signature", "target", "budget", "budget_seconds", "optimizer",
             "optimizer_label", "optimizer_params", "seed")
#: the fixed columns of a trial row; ``config.<name>`` and ``metric.<name>`` columns follow them
TRIAL_COLUMNS = (*_IDENTITY, "trial", "status", "early_stopped", "feasible", "fidelity", "objective",
                 "error_kind", "cost_s", "cumulative_cost_s", "best_so_far", "duplicate")
#: the columns of a case row
CASE_COLUMNS = (*_IDENTITY, "case_status", "n_trials", "found", "best", "score", "penalty",
                "first_feasible_trial", "total_cost_s", "direction", "objective_metric", "known_optimum", "path")
#: the fixed columns of a recorded table's measurement row
TABLE_COLUMNS = ("table", "key", "repeat", "status", "early_stopped", "error_kind", "cost_s", "attempts",
                 "contaminated")
#: the type of each fixed column that can be empty in a whole file (a Parquet column of nulls has no type)
_TYPES = {"budget_seconds": "float64", "objective": "float64", "best_so_far": "float64", "error_kind": "string",
          "best": "float64", "score": "float64", "penalty": "float64", "first_feasible_trial": "int64",
          "known_optimum": "float64", "fidelity": "string"}


class ExportError(ValueError):
    """The export cannot be written as asked (a missing library, an unknown format)."""


def _scalar(value: Any) -> Any:
    """A value a columnar file holds: numbers, strings and booleans as they are, anything else as JSON."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return json.dumps(value, sort_keys=True, default=str)


def _identity(case: Any, label: str) -> dict[str, Any]:
    g = case.group
    return {"task": case.task, "task_label": g.task_label, "task_signature": g.task_signature,
            "target": case.target, "budget": g.budget, "budget_seconds": g.budget_seconds,
            "optimizer": case.optimizer, "optimizer_label": label,
            "optimizer_params": json.dumps(case.optimizer_params, sort_keys=True, default=str),
            "seed": case.seed}


def _groups(paths: Sequence[Path | str]) -> list[Any]:
    return summarize(paths, statistics=False)


def case_rows(paths: Sequence[Path | str]) -> Iterator[dict[str, Any]]:
    """One row per case file under ``paths``, scored exactly as the leaderboard scores it."""
    for group in _groups(paths):
        for row in group.rows:
            for case in row.cases:
                yield {**_identity(case, row.label), "case_status": case.status, "n_trials": case.n_trials,
                       "found": case.best is not None, "best": case.best, "score": row.best_by_seed.get(case.seed),
                       "penalty": group.penalty, "first_feasible_trial": case.first_feasible_trial,
                       "total_cost_s": case.total_cost, "direction": group.direction,
                       "objective_metric": group.objective_metric, "known_optimum": group.known_optimum,
                       "path": case.path}


def trial_rows(paths: Sequence[Path | str]) -> Iterator[dict[str, Any]]:
    """One row per trial of every case file under ``paths`` (read by the strict case-file reader)."""
    for group in _groups(paths):
        for row in group.rows:
            for case in row.cases:
                identity = _identity(case, row.label)
                cumulative, best = 0.0, None
                for record in read_case_file(case.path).trials:
                    o = record["outcome"]
                    cost = float(o.get("cost_s") or 0.0)
                    cumulative += cost
                    found = counts_as_found(o) and o.get("objective") is not None
                    if found and direction_.better(o["objective"], best, group.direction):
                        best = o["objective"]
                    out = {**identity, "trial": record["trial"], "status": o["status"],
                           "early_stopped": bool(o.get("early_stopped")), "feasible": found,
                           "fidelity": o.get("fidelity") or "full", "objective": _scalar(o.get("objective")),
                           "error_kind": (o.get("error") or {}).get("kind"), "cost_s": cost,
                           "cumulative_cost_s": cumulative, "best_so_far": best,
                           "duplicate": bool(record.get("duplicate"))}
                    out.update({f"config.{k}": _scalar(v) for k, v in (record.get("config") or {}).items()})
                    out.update({f"metric.{k}": _scalar(v) for k, v in (o.get("metrics") or {}).items()})
                    yield out


def table_rows(table: Any) -> Iterator[dict[str, Any]]:
    """One row per measurement of a loaded recorded table (:class:`deploybench.device_tables.table.Table`): the
    configuration, the repeat, the status, the error kind and every scalar metric, as replay serves them
    (measurements contaminated in every attempt are not in ``table.measurements`` and not exported)."""
    for key, measurements in table.measurements.items():
        config = table.configs.get(key) or {}
        for repeat, m in enumerate(measurements):
            out = {"table": table.name, "key": key, "repeat": repeat, "status": m.get("status"),
                   "early_stopped": m.get("status") == "early_stopped", "error_kind": (m.get("error") or {}).get("kind"),
                   "cost_s": _scalar(m.get("cost_s")), "attempts": int(m.get("attempts") or 1),
                   "contaminated": bool(m.get("contaminated"))}
            out.update({f"config.{k}": _scalar(v) for k, v in config.items()})
            out.update({f"metric.{k}": _scalar(v) for k, v in (m.get("metrics") or {}).items()})
            yield out


def _column_values(rows: list[dict[str, Any]], name: str) -> list[Any]:
    """A column with one type: numbers stay numbers (ints widen to floats when mixed with floats);
    a column that mixes numbers, booleans and text becomes text."""
    values = [r.get(name) for r in rows]
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} and float in kinds:
        return [None if v is None else float(v) for v in values]
    if len(kinds) > 1:
        return [None if v is None else str(v) for v in values]
    return values


def _columns(rows: list[dict[str, Any]], fixed: Sequence[str]) -> list[str]:
    extra = sorted({k for r in rows for k in r} - set(fixed))
    config = [k for k in extra if k.startswith("config.")]
    return [*fixed, *config, *[k for k in extra if k not in config]]


def write_rows(rows: Iterable[dict[str, Any]], out: Path | str, fmt: str, fixed: Sequence[str],
               metadata: dict[str, str] | None = None) -> tuple[int, int]:
    """Write ``rows`` to ``out`` as ``parquet`` or ``csv``; returns (rows, columns). The Parquet file's
    key-value metadata holds ``deploybench_export_schema`` and ``metadata``."""
    rows = list(rows)
    columns = _columns(rows, fixed)
    data = {name: _column_values(rows, name) for name in columns}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        import csv

        with open(out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for i in range(len(rows)):
                writer.writerow(["" if data[c][i] is None else data[c][i] for c in columns])
        return len(rows), len(columns)
    if fmt != "parquet":
        raise ExportError(f"unknown format {fmt!r}; allowed: parquet, csv")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("--format parquet needs pyarrow, which is not installed; install it with: "
                          'pip install ".[export]" in the deploybench checkout (or use --format csv)') from None
    table = pa.table({name: pa.array(values, type=pa.type_for_alias(_TYPES[name])) if name in _TYPES
                      else pa.array(values) for name, values in data.items()})
    meta = {"deploybench_export_schema": str(EXPORT_SCHEMA), **(metadata or {})}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k: v for k, v in meta.items()}})
    pq.write_table(table, out, compression="zstd")
    return len(rows), len(columns)
