"""Recorded deployment tables: real measurements that replay targets serve back.

A table is a JSONL file (optionally gzipped):

- line 1, ``{"type": "table", "format_version", "space", "space_signature", "provenance", ...}``:
  the recorded grid (a :class:`~deploybench.space.SearchSpace` in JSON) and where, when and with
  what the measurements were taken (device, CPU, driver, library versions, date, profiler version);
- then one ``{"type": "measurement", "key", "config", "repeat", "measurement"}`` line per profile,
  ``measurement`` being :meth:`deploybench.live.profiler.Measurement.to_dict`.

Appending one line per finished measurement makes recording resumable and chunkable. A table's
ground truth (each configuration's probability of being feasible per scenario, the best
configuration per scenario) is computed from the repeats by :func:`ground_truth`.
"""

from __future__ import annotations

import gzip
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .space import SearchSpace

__all__ = ["TABLE_FORMAT_VERSION", "Table", "load_table", "TableError", "ConfigTruth", "ScenarioTruth",
           "ground_truth", "open_table_for_append", "shipped_tables_dir", "shipped_tables", "resolve_table"]

TABLE_FORMAT_VERSION = 1
FEASIBLE_PROBABILITY_FOR_OPTIMUM = 0.5


class TableError(ValueError):
    """A table that cannot be read or does not fit what was asked."""


def _open(path: Path, mode: str = "rt"):
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")
    return open(path, mode, encoding="utf-8")


@dataclass
class Table:
    """A loaded table: header, the recorded grid, and the measurements per configuration key."""

    path: Path
    header: dict
    space: SearchSpace
    measurements: dict[str, list[dict]] = field(default_factory=dict)
    configs: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.header.get("name") or self.path.name.split(".")[0]

    @property
    def provenance(self) -> dict:
        return self.header.get("provenance", {})

    def repeats(self, key: str) -> list[dict]:
        return self.measurements.get(key, [])

    def coverage(self) -> tuple[int, int]:
        """(configurations with at least one measurement, configurations in the grid)."""
        grid = sum(1 for _ in self.space.grid())
        return sum(1 for k in self.measurements if self.measurements[k]), grid

    def missing(self) -> list[dict]:
        return [c for c in self.space.grid() if not self.measurements.get(self.space.key(c))]

    def describe(self) -> str:
        p = self.provenance
        return (f"table {self.name} ({self.path.name}): {p.get('device_name') or p.get('device', '?')}, "
                f"recorded {p.get('date', '?')}, profiler {p.get('profiler_version', '?')}")


def load_table(path: Path | str) -> Table:
    """Read a table; a torn last line (recording killed mid-write) is skipped and reported."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"no recorded table at {path}")
    header = None
    table: Table | None = None
    with _open(path) as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if table is not None:
                table.problems.append(f"{path}:{i}: unreadable line skipped")
            continue
        if record.get("type") == "table":
            if record.get("format_version", 0) > TABLE_FORMAT_VERSION:
                raise TableError(f"{path} uses table format {record['format_version']}; this deploybench reads up to "
                                 f"{TABLE_FORMAT_VERSION}. Upgrade deploybench.")
            header = record
            table = Table(path=path, header=header, space=SearchSpace.from_json(header["space"]))
        elif record.get("type") == "measurement":
            if table is None:
                raise TableError(f"{path}: measurement before the table header")
            key = record["key"]
            table.measurements.setdefault(key, []).append(record["measurement"])
            table.configs.setdefault(key, record["config"])
    if table is None:
        raise TableError(f"{path} is not a deploybench table (no header line)")
    return table


def open_table_for_append(path: Path | str, header: dict) -> Any:
    """Open a table to append measurements, writing the header first when the file is new.

    An existing table must have been recorded on the same grid (same space signature)."""
    path = Path(path)
    if path.suffix == ".gz":
        raise TableError("record into a plain .jsonl file (gzip cannot be appended safely); compress it afterwards")
    if path.exists() and path.stat().st_size > 0:
        existing = load_table(path)
        if existing.header.get("space_signature") != header.get("space_signature"):
            raise TableError(f"{path} was recorded on another grid (space signature "
                             f"{existing.header.get('space_signature')} != {header.get('space_signature')}); "
                             "record into a new file or use the same filters")
        return open(path, "a", encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w", encoding="utf-8")
    fh.write(json.dumps({"type": "table", "format_version": TABLE_FORMAT_VERSION, **header}, allow_nan=False) + "\n")
    fh.flush()
    return fh


def shipped_tables_dir() -> Path:
    return Path(__file__).parent / "tasks" / "tables"


def shipped_tables() -> dict[str, Path]:
    """Tables shipped with the package, by name (``cpu`` → ``tasks/tables/cpu.jsonl``)."""
    out: dict[str, Path] = {}
    directory = shipped_tables_dir()
    if directory.is_dir():
        for p in sorted(directory.iterdir()):
            if p.name.endswith((".jsonl", ".jsonl.gz")):
                out[p.name.split(".")[0]] = p
    return out


def resolve_table(target: str) -> Path:
    """A shipped table name or a path to a recorded table."""
    shipped = shipped_tables()
    if target in shipped:
        return shipped[target]
    path = Path(target).expanduser()
    if path.exists():
        return path
    from .plugins import unknown_name_message

    raise TableError(unknown_name_message("recorded table", target, shipped) + " (or give a path to a recorded table)")


# -- ground truth -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfigTruth:
    key: str
    config: Mapping[str, Any]
    n: int
    p_feasible: float
    objective: float | None  # median objective over the feasible repeats
    p_crash: float


@dataclass(frozen=True)
class ScenarioTruth:
    """Per scenario: each configuration's feasibility probability and the best configuration.

    The optimum is the highest median objective among configurations feasible in at least
    half of their repeats (ties: higher feasibility probability)."""

    scenario: str
    configs: Mapping[str, ConfigTruth]
    best_key: str | None
    best_config: Mapping[str, Any] | None
    optimum: float | None
    feasible_share: float


def _repeat_feasible(m: Mapping[str, Any], constraints: Iterable[tuple[str, float]]) -> bool:
    if m.get("status") != "ok":
        return False
    metrics = m.get("metrics") or {}
    for metric, cap in constraints:
        value = metrics.get(metric)
        if value is None or value > cap:
            return False
    return True


def ground_truth(table: Table, scenario: Any) -> ScenarioTruth:
    """Feasibility probabilities and the optimum of ``scenario`` (a deployment Scenario) on ``table``."""
    caps = [(c.metric, c.cap) for c in scenario.constraints]
    sign = scenario.objective.sign
    metric = scenario.objective.metric
    configs: dict[str, ConfigTruth] = {}
    for key, reps in table.measurements.items():
        feasible = [m for m in reps if _repeat_feasible(m, caps)]
        values = [m["metrics"].get(metric) for m in feasible if (m.get("metrics") or {}).get(metric) is not None]
        configs[key] = ConfigTruth(
            key=key, config=table.configs[key], n=len(reps), p_feasible=len(feasible) / len(reps),
            objective=statistics.median(values) if values else None,
            p_crash=sum(m.get("status") in ("crashed", "timeout") for m in reps) / len(reps))
    eligible = [t for t in configs.values() if t.p_feasible >= FEASIBLE_PROBABILITY_FOR_OPTIMUM and t.objective is not None]
    best = max(eligible, key=lambda t: (sign * t.objective, t.p_feasible), default=None)
    share = sum(t.p_feasible for t in configs.values()) / len(configs) if configs else 0.0
    return ScenarioTruth(scenario=scenario.name, configs=configs, best_key=best.key if best else None,
                         best_config=best.config if best else None, optimum=best.objective if best else None,
                         feasible_share=share)
