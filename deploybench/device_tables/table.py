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
import math
import os
import statistics
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..space import SearchSpace
from .grid import GRID_PARAMS, DeploymentGrid, canonical_order

__all__ = ["TABLE_FORMAT_VERSION", "Table", "load_table", "TableError", "ConfigTruth", "ScenarioTruth",
           "ground_truth", "open_table_for_append", "ChunkAppender", "shipped_tables_dir", "shipped_tables", "resolve_table",
           "table_format_version",
           "grid_space", "pack_tables", "write_table", "PackResult"]

TABLE_FORMAT_VERSION = 2
#: a table line longer than this is not a measurement (a corrupt or hostile file): refused, not read whole
MAX_LINE_CHARS = 4_000_000
#: a grid larger than this is refused before anything enumerates it
MAX_GRID_CONFIGS = 200_000
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
    #: per key, per repeat: the measurement line's other fields (load average, source chunk, ...)
    extras: dict[str, list[dict]] = field(default_factory=dict)
    #: measurements disturbed by other work on every retry: kept in the file as evidence, never served
    contaminated: int = 0

    @property
    def name(self) -> str:
        return self.header.get("name") or self.path.name.split(".")[0]

    @property
    def provenance(self) -> dict:
        return self.header.get("provenance", {})

    def repeats(self, key: str) -> list[dict]:
        return self.measurements.get(key, [])

    def grid_keys(self) -> list[str]:
        """Keys of the grid's configurations (measurements of other configurations are ignored)."""
        return [self.space.key(c) for c in self.space.grid()]

    def coverage(self) -> tuple[int, int]:
        """(grid configurations with at least one measurement, configurations in the grid)."""
        keys = self.grid_keys()
        return sum(1 for k in keys if self.measurements.get(k)), len(keys)

    def off_grid(self) -> int:
        """Measurements of configurations outside the header's grid (a grid narrowed after recording)."""
        inside = set(self.grid_keys())
        return sum(len(v) for k, v in self.measurements.items() if k not in inside)

    def missing(self) -> list[dict]:
        return [c for c in self.space.grid() if not self.measurements.get(self.space.key(c))]

    def describe(self) -> str:
        p = self.provenance
        return (f"table {self.name} ({self.path.name}): {p.get('device_name') or p.get('device', '?')}, "
                f"recorded {p.get('date', '?')}, profiler {p.get('profiler_version', '?')}")


def _grid_size(space: SearchSpace) -> int:
    """An upper bound of the grid's size computed without enumerating it (conditions only shrink it)."""
    size = 1
    for p in space:
        if hasattr(p, "choices"):
            n = len(p.choices)
        elif hasattr(p, "values"):
            n = len(p.values)
        else:
            try:
                n = int(p.high) - int(p.low) + 1
            except (TypeError, ValueError):
                raise TableError(f"parameter {p.name!r} is not discrete: a table grid needs finite domains") from None
        size *= max(n, 1)
    return size


def _header_space(path: Path, lineno: int, record: Mapping[str, Any]) -> SearchSpace:
    space_json = record.get("space")
    if not isinstance(space_json, Mapping) or not isinstance(space_json.get("params"), list):
        raise TableError(f"{path}:{lineno}: the table header has no 'space' with a 'params' list")
    try:
        space = SearchSpace.from_json(space_json)
    except (KeyError, TypeError, ValueError) as exc:
        raise TableError(f"{path}:{lineno}: the table header's space is invalid ({type(exc).__name__}: {exc}); "
                         "expected parameters of kinds categorical, ordinal or integer") from None
    size = _grid_size(space)
    if size > MAX_GRID_CONFIGS:
        raise TableError(f"{path}:{lineno}: the table's grid has {size} configurations, more than the "
                         f"{MAX_GRID_CONFIGS} a recorded table can hold")
    return space


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a table file, streamed with a length cap; unreadable files raise TableError."""
    try:
        fh = _open(path)
    except IsADirectoryError:
        raise TableError(f"{path} is a directory, not a recorded table (.jsonl or .jsonl.gz)") from None
    except OSError as exc:
        raise TableError(f"cannot open the table {path}: {exc.strerror or exc}") from None
    try:
        with fh:
            lineno = 0
            while True:
                line = fh.readline(MAX_LINE_CHARS + 1)
                if not line:
                    return
                lineno += 1
                if len(line) > MAX_LINE_CHARS:
                    raise TableError(f"{path}:{lineno}: line longer than {MAX_LINE_CHARS} characters; "
                                     "not a deploybench table")
                yield lineno, line
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile, zlib.error) as exc:  # corrupt deflate data
        raise TableError(f"{path}: not a readable table ({type(exc).__name__}: {exc}); expected JSON lines, "
                         "optionally gzip-compressed (.jsonl.gz)") from None


def load_table(path: Path | str) -> Table:
    """Read a table, validating it as untrusted input: every problem names the file and the line.

    A torn last line (recording killed mid-write) and malformed measurement lines are skipped and
    reported in ``Table.problems``; a missing or invalid header raises :class:`TableError`.
    Measurements marked ``contaminated`` (disturbed by other work) are counted, never served."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"no recorded table at {path}")
    table: Table | None = None
    for i, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            if table is None:
                raise TableError(f"{path}:{i}: not JSON; a table starts with its header line "
                                 '{"type": "table", ...}') from None
            table.problems.append(f"{path}:{i}: unreadable line skipped")
            continue
        if not isinstance(record, dict):
            if table is None:
                raise TableError(f"{path}:{i}: expected a JSON object (the table header), got {type(record).__name__}")
            table.problems.append(f"{path}:{i}: a {type(record).__name__} instead of a measurement object; skipped")
            continue
        kind = record.get("type")
        if kind == "table":
            if table is not None:
                raise TableError(f"{path}:{i}: a second table header; one table per file")
            version = record.get("format_version", 0)
            if not isinstance(version, int) or version < 1:
                raise TableError(f"{path}:{i}: the header's format_version must be a positive integer, got {version!r}")
            if version > TABLE_FORMAT_VERSION:
                raise TableError(f"{path} uses table format {version}; this deploybench reads up to "
                                 f"{TABLE_FORMAT_VERSION}. Upgrade deploybench.")
            if not isinstance(record.get("provenance", {}), dict):
                raise TableError(f"{path}:{i}: the header's 'provenance' must be an object")
            table = Table(path=path, header=record, space=_header_space(path, i, record))
        elif kind == "measurement":
            if table is None:
                raise TableError(f"{path}:{i}: measurement before the table header")
            problem = _measurement_problem(record, table.space)
            if problem:
                table.problems.append(f"{path}:{i}: {problem}; skipped")
                continue
            if record["measurement"].get("contaminated"):
                table.contaminated += 1
                continue
            key = record["key"]
            table.measurements.setdefault(key, []).append(record["measurement"])
            table.configs.setdefault(key, record["config"])
            table.extras.setdefault(key, []).append(
                {k: v for k, v in record.items() if k not in ("type", "key", "config", "repeat", "measurement")})
        elif table is None:
            raise TableError(f"{path}:{i}: expected the table header line (type 'table'), got type {kind!r}")
        else:
            table.problems.append(f"{path}:{i}: unknown line type {kind!r}; skipped")
    if table is None:
        raise TableError(f"{path} is not a deploybench table (no header line)")
    return table


_STATUSES = ("ok", "early_stopped", "crashed", "timeout")
#: metrics that scenarios judge or replay sums: a finite number or null in every usable measurement
_NUMERIC_SUFFIXES = ("_ms", "_mb", "_sps", "_s")


def _numeric_metric(name: str) -> bool:
    return name.endswith(_NUMERIC_SUFFIXES) or name in ("accuracy", "accuracy_unknown")


def _not_a_number(value: Any) -> bool:
    return value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value))


def _measurement_problem(record: Mapping[str, Any], space: SearchSpace) -> str | None:
    """What is wrong with a measurement line (None when it is usable)."""
    key, config, m = record.get("key"), record.get("config"), record.get("measurement")
    if not isinstance(key, str) or not isinstance(config, dict) or not isinstance(m, dict):
        return "a measurement line needs 'key' (text), 'config' (object) and 'measurement' (object)"
    if m.get("status") not in _STATUSES:
        return f"measurement status {m.get('status')!r} is not one of {', '.join(_STATUSES)}"
    if not isinstance(m.get("metrics") or {}, dict) or not isinstance(m.get("stages") or {}, dict):
        return "measurement 'metrics' and 'stages' must be objects"
    if m["status"] in ("crashed", "timeout") and not isinstance(m.get("error"), dict):
        return f"a {m['status']} measurement needs an 'error' object"
    if isinstance(m.get("error"), dict) and not all(isinstance(m["error"].get(f, ""), str) for f in ("kind", "message")):
        return "the 'error' object's kind and message must be text"
    bad = [k for k, v in (m.get("metrics") or {}).items() if _numeric_metric(str(k)) and _not_a_number(v)]
    bad += [k for k, v in (m.get("stages") or {}).items() if _not_a_number(v)]
    if bad:
        return f"{bad[0]!r} must be a finite number or null"
    attempts = m.get("attempts")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
        return f"attempts {attempts!r} is not a positive integer"
    lat = m.get("latencies_ms")
    if lat is not None and (not isinstance(lat, list) or any(v is None or _not_a_number(v) for v in lat)):
        return "'latencies_ms' must be a list of finite numbers"
    if _not_a_number(m.get("cost_s")):
        return f"cost_s {m.get('cost_s')!r} is not a finite number"
    try:
        if space.key(config) != key:
            return "the line's key does not match its config"
    except Exception as exc:  # noqa: BLE001 - any malformed config is a skipped line, not a crash
        return f"config does not fit the table's space ({exc})"
    return None


class ChunkAppender:
    """Appends measurement lines to a recording chunk, and notices when the file it appends to is no
    longer the chunk at its path: deleted, or replaced under it (``git stash`` or ``checkout``, an editor,
    a copy). Writing on would put every later measurement into a file nobody can open once the recorder
    exits; instead, before the next line, everything the old file holds is saved beside the chunk as
    ``<name>.recovered-<UTC time>.jsonl`` and :class:`TableError` says where. Use it as a file
    (``write``, ``flush``, ``close``); each ``write`` is flushed at once."""

    def __init__(self, path: Path, fh: Any) -> None:
        self.path = path
        self.fh = fh
        st = os.fstat(fh.fileno())
        self._identity = (st.st_dev, st.st_ino)

    def _replaced(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    def write(self, text: str) -> None:
        if self._replaced():
            self.fh.flush()
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            rescue = self.path.with_name(f"{self.path.name.split('.')[0]}.recovered-{stamp}.jsonl")
            size = os.fstat(self.fh.fileno()).st_size
            with open(rescue, "wb") as out:
                out.write(os.pread(self.fh.fileno(), size, 0))
                out.write(text.encode("utf-8"))  # the measurement that found out, too
            raise TableError(f"{self.path} was deleted or replaced while recording (a git stash or checkout, an "
                             f"editor or a copy); nothing is lost: everything it held, with every measurement "
                             f"recorded since, is in {rescue}. Put that file back at {self.path} and run the same "
                             "command again to resume")
        self.fh.write(text)
        self.fh.flush()

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def open_table_for_append(path: Path | str, header: dict) -> ChunkAppender:
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
        return ChunkAppender(path, open(path, "a+", encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "w+", encoding="utf-8")
    fh.write(json.dumps({"type": "table", "format_version": TABLE_FORMAT_VERSION, **header}, allow_nan=False) + "\n")
    fh.flush()
    return ChunkAppender(path, fh)


def shipped_tables_dir() -> Path:
    return Path(__file__).parent.parent / "tasks" / "tables"


def shipped_tables() -> dict[str, Path]:
    """Tables shipped with the package, by name (``cpu`` → ``tasks/tables/cpu.jsonl``)."""
    out: dict[str, Path] = {}
    directory = shipped_tables_dir()
    if directory.is_dir():
        for p in sorted(directory.iterdir()):
            if p.name.endswith((".jsonl", ".jsonl.gz")):
                out[p.name.split(".")[0]] = p
    return out


def table_format_version(path: Path | str) -> int:
    """The ``format_version`` of a table's header, reading only its first line (cheap enough to call
    while plugins register tasks); 0 when the first line is not a table header."""
    for _, line in _lines(Path(path)):
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            return 0
        version = record.get("format_version", 0) if isinstance(record, dict) and record.get("type") == "table" else 0
        return version if isinstance(version, int) else 0
    return 0


def resolve_table(target: str) -> Path:
    """A shipped table name or a path to a recorded table."""
    shipped = shipped_tables()
    if target in shipped:
        return shipped[target]
    path = Path(target).expanduser()
    if path.exists():
        return path
    from ..errors import unknown_name_message

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
        if metric == "accuracy_unknown" and value is None:  # format 1: no such metric, accuracy always given
            value = 0.0 if metrics.get("accuracy") is not None else 1.0
        if value is None or value > cap:
            return False
    return True


def ground_truth(table: Table, scenario: Any) -> ScenarioTruth:
    """Feasibility probabilities and the optimum of ``scenario`` (a deployment Scenario) on ``table``."""
    caps = [(c.metric, c.cap) for c in scenario.constraints]
    sign = scenario.objective.sign
    metric = scenario.objective.metric
    configs: dict[str, ConfigTruth] = {}
    for key in table.grid_keys():
        reps = table.measurements.get(key)
        if not reps:
            continue
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


# -- grids, packing and writing ----------------------------------------------------------------------------
#: on ties, :func:`pack_tables` drops values of later parameters first (keep models and backends, the
#: structure optimizers must discover; a knob value or a thread count is the cheapest loss)
DROP_PREFERENCE = ("model", "backend", "precision", "batch_size", "threads", "memory_format", "graph_optimization")


def grid_space(models: Sequence[str], backends: Sequence[str], precisions: Sequence[str],
               batch_sizes: Sequence[int], threads: Sequence[int], memory_formats: Sequence[str] = (),
               graph_optimizations: Sequence[str] = ()) -> SearchSpace:
    """A recorded grid as a space (see :class:`deploybench.device_tables.grid.DeploymentGrid`)."""
    return DeploymentGrid(models=tuple(models), backends=tuple(backends), precisions=tuple(precisions),
                          batch_sizes=tuple(batch_sizes), threads=tuple(threads), memory_formats=tuple(memory_formats),
                          graph_optimizations=tuple(graph_optimizations)).space()


def _domains_space(domains: Mapping[str, Sequence[Any]]) -> SearchSpace:
    return DeploymentGrid.from_domains(domains).space()


@dataclass
class PackResult:
    """What :func:`pack_tables` made: the header, the measurement records, and what it left out."""

    header: dict
    records: list[dict]
    dropped: list[tuple[str, Any, int]]  # (parameter, value, measured configurations it held)
    filtered_out: int  # measurements outside the requested filters
    missing: list[dict]  # configurations of the packed grid without a measurement (complete=False only)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace.from_json(self.header["space"])


def config_id(config: Mapping[str, Any]) -> str:
    """A configuration's identity across chunks whose grids differ (their keys may not)."""
    return json.dumps(dict(config), sort_keys=True)


def _prefer_quiet(rows: list[tuple[dict, dict, dict]], max_load: float) -> tuple[list, int]:
    def quiet(extra: dict) -> bool:
        load = extra.get("load_avg_1m")
        return load is not None and load <= max_load

    has_quiet: dict[str, bool] = {}
    for config, extra, _ in rows:
        k = config_id(config)
        has_quiet[k] = has_quiet.get(k, False) or quiet(extra)
    kept = [r for r in rows if quiet(r[1]) or not has_quiet[config_id(r[0])]]
    return kept, len(rows) - len(kept)


def _merge_provenance(tables: Sequence[Table], note: str | None) -> dict:
    base = dict(tables[0].provenance)
    if len(tables) > 1:
        dates = sorted({t.provenance.get("date") for t in tables if t.provenance.get("date")})
        base["date"] = dates[0] if len(dates) == 1 else f"{dates[0]}..{dates[-1]}" if dates else base.get("date")
        threads = sorted({t for tb in tables for t in (tb.provenance.get("threads_recorded") or [])})
        base["threads_recorded"] = threads
        for field_name in ("device", "device_name", "cpu", "cuda", "versions", "profiler_version"):
            values = {json.dumps(t.provenance.get(field_name), sort_keys=True) for t in tables}
            if len(values) > 1:
                base[field_name + "_per_source"] = [t.provenance.get(field_name) for t in tables]
    base["sources"] = [{"name": t.name, "file": t.path.name, "date": t.provenance.get("date"),
                        "measurements": sum(len(v) for v in t.measurements.values()),
                        "time_limit_s": t.provenance.get("time_limit_s"),
                        "grid_signature": t.header.get("space_signature")} for t in tables]
    if note:
        base["note"] = note
    return base


#: the node name of measurements recorded without a fleet (on the recording machine itself)
LOCAL_NODE = "local"


def node_name(extra: Mapping[str, Any] | None) -> str:
    """The node a measurement line names (``deploybench record --executor ray`` stores it): its label,
    else its host and the start of its Ray node id; :data:`LOCAL_NODE` for a line without one."""
    node = (extra or {}).get("node")
    if not isinstance(node, Mapping):
        return LOCAL_NODE
    if node.get("label"):
        return str(node["label"])
    ident = str(node.get("id") or "")[:8]
    return f"{node.get('host') or '?'}:{ident}" if ident else str(node.get("host") or LOCAL_NODE)


def _pack_rows(tables: Sequence[Table], supersede: Sequence[Table], keep: Mapping[str, set],
               node: str | None) -> tuple[list[tuple[dict, dict, dict]], int, set[str], int]:
    """(config, line extras, measurement) rows of the tables, with the measurements of every
    configuration a ``supersede`` table measured taken from there only; also how many were filtered
    out, which configurations were renewed, and how many older measurements they replaced."""
    rows: list[tuple[dict, dict, dict]] = []
    filtered_out = replaced = 0
    renewed = {config_id(t.configs[key]) for t in supersede for key, reps in t.measurements.items() if reps}
    for t, renewing in [*((t, False) for t in tables), *((t, True) for t in supersede)]:
        for key, reps in t.measurements.items():
            config = t.configs[key]
            if not renewing and config_id(config) in renewed:
                replaced += len(reps)
                continue
            if any(k in config and config[k] not in allowed for k, allowed in keep.items()):
                filtered_out += len(reps)
                continue
            extras = t.extras.get(key) or [{}] * len(reps)
            source = {"source": t.name}
            if t.provenance.get("time_limit_s") is not None:  # older chunks store it in the header only
                source["time_limit_s"] = t.provenance["time_limit_s"]
            for m, extra in zip(reps, extras):
                if node is not None and node_name(extra) != node:
                    filtered_out += 1
                    continue
                rows.append((config, {**source, **extra}, m))
    return rows, filtered_out, renewed, replaced


def _complete_grid(domains: dict[str, list], rows: Sequence[tuple[dict, dict, dict]],
                   complete: bool) -> tuple[dict[str, list], list[tuple[str, Any, int]], list[dict]]:
    """With ``complete``, drop values greedily until every configuration of the grid is measured (see
    :func:`pack_tables`); returns the domains, the dropped values and what is still unmeasured."""
    space = _domains_space(domains)
    measured_by_key = {space.key(c) for c, _, _ in rows}  # keys name parameters, not domains: valid in sub-grids

    def missing_of(doms: Mapping[str, list]) -> tuple[list[dict], int]:
        sp = _domains_space(doms)
        grid = list(sp.grid())
        return [c for c in grid if sp.key(c) not in measured_by_key], len(grid)

    dropped: list[tuple[str, Any, int]] = []
    missing, size = missing_of(domains)
    while complete and missing:
        best = None
        for p in GRID_PARAMS:
            if len(domains[p]) < 2:
                continue
            for v in domains[p]:
                trial = {**domains, p: [x for x in domains[p] if x != v]}
                m2, s2 = missing_of(trial)
                lost, fixed = size - s2, len(missing) - len(m2)
                if lost <= 0:
                    continue
                score = (fixed / lost, -lost, DROP_PREFERENCE.index(p))
                if best is None or score > best[0]:
                    best = (score, p, v, trial, m2, s2)
        if best is None:
            raise TableError(f"cannot make a complete grid: {len(missing)} configurations unmeasured, e.g. {missing[0]}")
        _, p, v, domains, missing, size = best
        dropped.append((p, v, sum(1 for c, _, _ in rows if c.get(p) == v)))
    return domains, dropped, missing


def pack_tables(tables: Sequence[Table], *, name: str, keep: Mapping[str, Sequence[Any]] | None = None,
                complete: bool = True, note: str | None = None, prefer_load_below: float | None = None,
                node: str | None = None, supersede: Sequence[Table] = ()) -> PackResult:
    """Merge recorded tables (chunks of one device's recording) into one table.

    The packed grid is the product of the measured values of each parameter, restricted to ``keep``
    (parameter → allowed values). With ``complete`` (the default; replay needs it) values are dropped
    greedily until every configuration of the grid has a measurement: at each step the value whose
    removal takes away the largest share of unmeasured configurations per configuration lost (ties:
    fewer configurations lost, then threads before batch sizes before precisions, backends, models).
    Repeats of one configuration from several sources are concatenated. With ``prefer_load_below``, a
    configuration that has repeats recorded at a 1-minute load average at or below it keeps only those
    (repeats measured while other jobs ran are replaced by quiet ones where a quiet one exists). With
    ``node``, only the measurements of that node of a fleet recording are kept (:func:`node_name`): one
    machine's view of the device, where the default pools every node's repeats. Every configuration
    measured in a ``supersede`` table (a re-measurement, e.g. after the memory accounting changed) keeps
    only its measurements from those tables; the provenance lists what was superseded.
    """
    if not tables:
        raise TableError("nothing to pack: give at least one table")
    keep = {k: set(v) for k, v in (keep or {}).items() if v}
    for k in keep:
        if k not in GRID_PARAMS:
            raise TableError(f"unknown grid parameter {k!r}; known: {', '.join(GRID_PARAMS)}")
    rows, filtered_out, renewed, replaced = _pack_rows(tables, supersede, keep, node)
    if prefer_load_below is not None:
        rows, superseded = _prefer_quiet(rows, prefer_load_below)
        filtered_out += superseded
    if not rows:
        raise TableError("no measurement left after the filters")
    domains: dict[str, list] = {p: canonical_order(p, {c[p] for c, _, _ in rows if p in c}) for p in GRID_PARAMS}
    domains, dropped, missing = _complete_grid(domains, rows, complete)
    space = _domains_space(domains)
    records = []
    repeat_of: dict[str, int] = {}
    for config, extra, m in rows:
        if not space.is_valid(config):
            continue
        key = space.key(config)
        records.append({"type": "measurement", "key": key, "config": config, "repeat": repeat_of.get(key, 0),
                        **{k: v for k, v in extra.items() if k not in ("type", "key", "config", "repeat", "measurement")},
                        "measurement": m})
        repeat_of[key] = repeat_of.get(key, 0) + 1
    provenance = _merge_provenance([*tables, *supersede], note)
    if supersede:
        provenance["superseded"] = {
            "by": [t.path.name for t in supersede],
            "configurations": sorted(renewed), "measurements_replaced": replaced,
            "why": "; ".join(sorted({str(t.provenance.get("note")) for t in supersede if t.provenance.get("note")}))
                   or None,
            "memory_accounting": sorted({str(t.provenance.get("memory_accounting")) for t in supersede}),
        }
    provenance["threads_recorded"] = list(domains.get("threads") or [])  # what the packed grid holds
    limits = sorted({r["time_limit_s"] for r in records if r.get("time_limit_s") is not None})
    if limits:
        provenance["time_limit_s"] = limits[-1]
        if len(limits) > 1:
            provenance["time_limits_s"] = limits  # per measurement in each record's time_limit_s
    if prefer_load_below is not None:
        provenance["prefer_load_below"] = prefer_load_below
    if node is not None:
        provenance["node"] = node  # one node's view of a fleet recording
    header = {"type": "table", "format_version": TABLE_FORMAT_VERSION, "name": name, "space": space.to_json(),
              "space_signature": space.signature(), "provenance": provenance}
    return PackResult(header=header, records=records, dropped=dropped, filtered_out=filtered_out,
                      missing=[] if complete else missing)


def write_table(path: Path | str, header: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> Path:
    """Write a whole table (gzip when the name ends in ``.gz``, with a fixed mtime so the bytes depend
    only on the content). Written to a temporary file first and renamed, so readers never see half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    lines = [json.dumps(dict(header), allow_nan=False)] + [json.dumps(dict(r), allow_nan=False) for r in records]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if path.suffix == ".gz":
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(data)
    else:
        tmp.write_bytes(data)
    tmp.replace(path)
    return path
