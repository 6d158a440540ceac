"""Rerun published cases and compare them with their records, trial by trial.

A published table says what happened on the machine that ran it; this says whether it happens
again here. Cases are chosen across tasks and optimizers (one per task × optimizer pair in turn,
seeds spread over the recorded ones), rerun through ``deploybench run`` exactly as their headers
describe them (task, target, optimizer with every parameter, seed, budget) into a scratch folder,
and each trial's suggestion and outcome are compared with the record. Timings (``ask_s``,
``eval_s``, ``tell_s``) are not compared: they are never reproducible.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..results import CaseLocation, ResultsFormatError, read_case_file
from .reading import iter_case_paths

__all__ = ["CaseRecord", "Comparison", "read_record", "load_records", "choose_cases", "compare_trials", "reproduce_case", "run_arguments",
           "COMPARED_FIELDS"]

#: the fields of a trial line that must be identical for a rerun to reproduce it
COMPARED_FIELDS = ("config", "outcome", "duplicate")


@dataclass
class CaseRecord:
    """One case file's header and trial lines (in trial order)."""

    path: CaseLocation
    header: dict
    trials: list[dict]

    @property
    def task_label(self) -> str:
        return str(self.header.get("task_label") or self.header.get("task"))

    @property
    def optimizer(self) -> str:
        return str(self.header.get("optimizer"))

    @property
    def seed(self) -> int:
        return int(self.header.get("seed") or 0)

    @property
    def node_id(self) -> str:
        return str(self.header.get("node_id") or f"{self.task_label}::{self.optimizer}[seed={self.seed}]")


@dataclass
class Comparison:
    """The verdict for one rerun case."""

    record: CaseRecord
    status: str  # identical | diverged | not rerun
    first_divergence: int | None = None  # 0-based trial index
    detail: str = ""

    def line(self) -> str:
        text = f"{self.record.node_id}: {self.status}"
        if self.first_divergence is not None:
            text += f" at trial {self.first_divergence}"
        return text + (f" ({self.detail})" if self.detail else "")


def read_record(path: Path | str) -> CaseRecord:
    """A case file's header and trials, read by the one strict reader
    (:func:`deploybench.results.read_case_file`: a torn or corrupt line is skipped, and only the first
    contiguous run of trials is trusted). Raises ValueError for a file that is not a case file."""
    try:
        case = read_case_file(path)
    except ResultsFormatError as exc:
        raise ValueError(str(exc)) from None
    return CaseRecord(case.path, case.header, case.trials)


def choose_cases(records: Sequence[CaseRecord], n: int) -> list[CaseRecord]:
    """``n`` cases spread across tasks and optimizers: the task × optimizer pairs are visited in a
    diagonal order (consecutive picks differ in both task and optimizer where possible), and each
    pair's seeds are taken spread over its recorded seeds. Deterministic."""
    pairs: dict[tuple[str, str], list[CaseRecord]] = {}
    for r in records:
        pairs.setdefault((r.task_label, r.optimizer), []).append(r)
    for items in pairs.values():
        items.sort(key=lambda r: r.seed)
    tasks = sorted({t for t, _ in pairs})
    optimizers = sorted({o for _, o in pairs})
    order = sorted(pairs, key=lambda p: ((optimizers.index(p[1]) - tasks.index(p[0])) % max(len(optimizers), 1),
                                         tasks.index(p[0])))
    spread = {pair: [items[i] for i in _spread(len(items))] for pair, items in pairs.items()}
    chosen: list[CaseRecord] = []
    for round_ in range(max((len(v) for v in spread.values()), default=0)):
        for position, pair in enumerate(order):
            if len(chosen) == n:
                return chosen
            items = spread[pair]
            if round_ < len(items):
                chosen.append(items[(round_ + position) % len(items)])  # pairs start at different seeds
    return chosen


def _spread(n: int) -> list[int]:
    """The indices 0..n-1, middle first, then in steps of 7 (so a few picks see varied seeds)."""
    order: list[int] = []
    for k in range(7 * n):
        i = (n // 2 + 7 * k) % n
        if i not in order:
            order.append(i)
    return order + [i for i in range(n) if i not in order]


def _comparable(trial: dict) -> dict:
    return {k: trial.get(k) for k in COMPARED_FIELDS}


def _first_difference(a: Any, b: Any, where: str = "") -> str:
    """A short description of the first place two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k) or (k in a) != (k in b):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
    return f"{where}: recorded {json.dumps(a, default=str)[:80]}, rerun {json.dumps(b, default=str)[:80]}"


def compare_trials(recorded: Sequence[dict], rerun: Sequence[dict]) -> tuple[int | None, str]:
    """The first trial index where the two runs differ (``None``: identical) and what differed."""
    for i, (a, b) in enumerate(zip(recorded, rerun)):
        ca, cb = _comparable(a), _comparable(b)
        if ca != cb:
            return i, _first_difference(ca, cb)
    if len(recorded) != len(rerun):
        i = min(len(recorded), len(rerun))
        return i, f"recorded {len(recorded)} trials, rerun {len(rerun)}"
    return None, ""


def _task_arg(header: dict) -> str:
    task, target = str(header.get("task")), header.get("target")
    return f"{task}[{target}]" if target else task


def run_arguments(header: dict, out: Path) -> list[str]:
    """The ``deploybench run`` command line that reruns the case a header describes."""
    opt = str(header["optimizer"])
    args = ["run", "-o", opt, "-t", _task_arg(header), "--seed", str(int(header.get("seed") or 0)),
            "--budget", str(int(header["budget"])), "--out", str(out), "-q"]
    if header.get("budget_seconds") is not None:
        args += ["--budget-seconds", repr(float(header["budget_seconds"]))]
    for key, value in sorted((header.get("optimizer_params") or {}).items()):
        args += ["--opt-param", f"{opt}.{key}={json.dumps(value)}"]
    return args


def reproduce_case(record: CaseRecord, run: Callable[[list[str]], int]) -> Comparison:
    """Rerun one case with ``run`` (``deploybench.cli.main.main``, or a stand-in) in a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="deploybench-reproduce-") as tmp:
        out = Path(tmp) / "runs"
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            code = run(run_arguments(record.header, out))
        files = list(iter_case_paths(out)) if out.exists() else []
        if len(files) != 1:
            tail = captured.getvalue().strip().splitlines()[-1:] or [""]
            return Comparison(record, "not rerun", None, f"deploybench run exited {code}: {tail[0][:200]}")
        rerun = read_record(files[0])
    if rerun.header.get("task_signature") != record.header.get("task_signature"):
        return Comparison(record, "diverged", 0,
                          f"the task changed: signature {record.header.get('task_signature')} recorded, "
                          f"{rerun.header.get('task_signature')} here")
    index, detail = compare_trials(record.trials, rerun.trials)
    if index is None:
        return Comparison(record, "identical", None, f"{len(record.trials)} trials")
    return Comparison(record, "diverged", index, detail)


def load_records(roots: Iterable[Path | str]) -> list[CaseRecord]:
    return [read_record(p) for root in roots for p in iter_case_paths(root)]
