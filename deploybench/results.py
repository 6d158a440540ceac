"""The results store: one JSONL file per case, written and flushed as each trial ends.

Layout: ``<out>/<task label>/<optimizer>/seed_<n>.jsonl``. Each file holds

- a ``case`` line (format version, node id, task signature, optimizer parameters, budget, ...),
- one ``trial`` line per evaluation, appended and flushed (and fsynced) when the trial ends,
- an ``end`` line when the case finishes (``completed`` or ``error`` with its traceback).

A killed run therefore loses at most the trial in flight. Readers tolerate a torn last line
(and say so); a file written by a newer format version is refused with a clear message.
A run manifest (``manifest.json``, plus every session in ``sessions.jsonl``) records versions,
the command line, the machine and the task signatures.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = [
    "FORMAT_VERSION",
    "CaseFile",
    "CaseWriter",
    "read_case_file",
    "iter_case_files",
    "case_path",
    "write_manifest",
    "ResultsFormatError",
    "dumps",
]

FORMAT_VERSION = 1


class ResultsFormatError(Exception):
    """A results file this version cannot read (written by a newer format, or not a case file)."""


def _reject_nonfinite(value: Any) -> Any:
    raise ValueError(f"non-finite number {value!r} cannot be written to a results file")


def dumps(record: dict) -> str:
    """JSON for one line; refuses NaN and ±Infinity (results files are strict JSON)."""
    return json.dumps(record, allow_nan=False, separators=(",", ":"), default=_default)


def _default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text} in a results file")
    return value


def loads(line: str) -> dict:
    return json.loads(line, parse_constant=lambda c: _reject_nonfinite(c), parse_float=_strict_float)


def case_path(out_dir: Path | str, task_label: str, optimizer: str, seed: int) -> Path:
    return Path(out_dir) / task_label / optimizer / f"seed_{seed}.jsonl"


class CaseWriter:
    """Appends the lines of one case's file. Every write is flushed to the OS (a killed process
    loses nothing written); ``fsync=True`` also forces it to disk (survives a machine crash, costs ~ms)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = None

    def start(self, header: dict, trials: list[dict] | None = None) -> None:
        """Start the file afresh: the case header, then any trials kept from an earlier session."""
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(dumps({"type": "case", "format_version": FORMAT_VERSION, **header}) + "\n")
            for t in trials or []:
                fh.write(dumps(t) + "\n")
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        assert self._fh is not None, "start() first"
        self._fh.write(dumps(record) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "CaseWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class CaseFile:
    """A case file as read back: header, trials, end line (None if unfinished), and read problems."""

    path: Path
    header: dict
    trials: list[dict] = field(default_factory=list)
    end: dict | None = None
    torn_line: int | None = None  # 1-based number of a torn/corrupt line that was skipped
    problems: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def completed(self) -> bool:
        return self.end is not None and self.end.get("status") == "completed"


def read_case_file(path: Path | str) -> CaseFile:
    """Read a case file. A torn or corrupt line is skipped and reported in ``problems``; a file
    from a newer format version raises :class:`ResultsFormatError`."""
    path = Path(path)
    header: dict | None = None
    trials: list[dict] = []
    end = None
    problems: list[str] = []
    torn = None
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    for i, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            record = loads(line)
        except (ValueError, json.JSONDecodeError) as exc:
            last = i == len(lines)
            kind = "torn last line (the run was probably killed while writing it)" if last and not raw.endswith("\n") else "corrupt line"
            problems.append(f"{path}:{i}: {kind}, skipped ({exc.__class__.__name__})")
            torn = i
            continue
        rtype = record.get("type")
        if rtype == "case":
            version = record.get("format_version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise ResultsFormatError(
                    f"{path} was written by results format version {version!r}; this deploybench reads versions "
                    f"up to {FORMAT_VERSION}. Upgrade deploybench to read it."
                )
            header = record
        elif rtype == "trial":
            trials.append(record)
        elif rtype == "end":
            end = record
        else:
            problems.append(f"{path}:{i}: unknown record type {rtype!r}, skipped")
    if header is None:
        raise ResultsFormatError(f"{path} is not a deploybench case file (no case header line)")
    # trials must be numbered 0..n-1; a duplicate index (e.g. a resumed write) keeps the first
    seen: dict[int, dict] = {}
    for t in trials:
        seen.setdefault(int(t["trial"]), t)
    ordered = [seen[i] for i in sorted(seen)]
    if [t["trial"] for t in ordered] != list(range(len(ordered))):
        problems.append(f"{path}: trial numbers have gaps; kept the first contiguous run")
        contiguous = []
        for i, t in enumerate(ordered):
            if t["trial"] != i:
                break
            contiguous.append(t)
        ordered = contiguous
    return CaseFile(path=path, header=header, trials=ordered, end=end, torn_line=torn, problems=problems)


def iter_case_files(root: Path | str) -> Iterator[Path]:
    """Every ``seed_*.jsonl`` under ``root``, in sorted order."""
    root = Path(root)
    if root.is_file():
        yield root
        return
    yield from sorted(root.rglob("seed_*.jsonl"))


def write_manifest(out_dir: Path | str, manifest: dict) -> None:
    """Write ``manifest.json`` (this session) and append it to ``sessions.jsonl`` (all sessions)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
    os.replace(tmp, out / "manifest.json")
    with open(out / "sessions.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(manifest, sort_keys=True, default=str, allow_nan=False) + "\n")
