"""The results store: one JSONL file per case, written and flushed as each trial ends.

Layout: ``<out>/<task label>/<optimizer>/seed_<n>.jsonl``. Each file holds

- a ``case`` line (format version, node id, task signature, optimizer parameters, budget, ...),
- one ``trial`` line per evaluation, appended and flushed (and fsynced) when the trial ends,
- an ``end`` line when the case finishes (``completed`` or ``error`` with its traceback).

A killed run therefore loses at most the trial in flight. Readers tolerate a torn last line
(and say so); a file written by a newer format version is refused with a clear message.
A run manifest (``manifest.json``, plus every session in ``sessions.jsonl``) records versions,
the command line, the machine and the task signatures.

Published records (``leaderboard/runs``) keep the same files, compacted, in one ZIP archive per table
(``<task label>.tar.xz`` holding ``<optimizer>/seed_<n>.jsonl``; :mod:`deploybench.archive` writes
them): every reader here takes a case inside an archive wherever it takes a case file, and a case's
path then reads ``.../edge_tight@edge.tar.xz/tba/seed_0.jsonl``. ``tar xf`` gives back the layout
``run`` writes.
"""

from __future__ import annotations

import fnmatch
import functools
import gzip
import io
import json
import lzma
import math
import os
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator, Union

from . import direction as direction_
from .outcome import ErrorKind

__all__ = [
    "FORMAT_VERSION",
    "CaseFile",
    "CaseWriter",
    "read_case_file",
    "scan_case_file",
    "MAX_LINE_BYTES",
    "iter_case_files",
    "CASE_PATTERNS",
    "ARCHIVE_SUFFIX",
    "CaseLocation",
    "case_location",
    "archive_of",
    "is_archive",
    "ArchivedCase",
    "drop_lines_after_end",
    "case_path",
    "write_manifest",
    "ResultsFormatError",
    "ResultsWriteError",
    "dumps",
]

FORMAT_VERSION = 1



class ResultsFormatError(Exception):
    """A results file this version cannot read (written by a newer format, or not a case file)."""


class ResultsWriteError(Exception):
    """The results folder cannot be written (read-only, full disk, not a directory). The session
    stops cleanly: every line written before stays, and ``--resume`` continues once it is fixed."""


def _write_error(path: Path, exc: OSError) -> ResultsWriteError:
    return ResultsWriteError(f"cannot write {path}: {exc.strerror or exc}")


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
    loses nothing written); ``fsync=True`` also forces it to disk (survives a machine crash, costs ~ms).

    An OS error (read-only or full disk) raises :class:`ResultsWriteError`; the lines before it stay.
    While it is open the file is locked (see :func:`deploybench.locking.hold_case_file`), so a later
    session waits for a writer that is still finishing instead of racing it."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fh: IO[str] | None = None

    def start(self, header: dict, trials: list[dict] | None = None) -> None:
        """Start the file afresh: the case header, then any trials kept from an earlier session."""
        from .locking import hold_case_file

        tmp = self.path.with_suffix(".jsonl.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(dumps({"type": "case", "format_version": FORMAT_VERSION, **header}) + "\n")
                for t in trials or []:
                    fh.write(dumps(t) + "\n")
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._fh = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise _write_error(self.path, exc) from None
        hold_case_file(self._fh)

    def write(self, record: dict) -> None:
        assert self._fh is not None, "start() first"
        try:
            self._fh.write(dumps(record) + "\n")
            self._fh.flush()
            if self.fsync:
                os.fsync(self._fh.fileno())
        except OSError as exc:
            raise _write_error(self.path, exc) from None

    def close(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass  # the failed write was reported already; closing releases the lock
            self._fh = None

    def __enter__(self) -> "CaseWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: a longer line is not a trial record (a trial line is a few kB); it is skipped unread
MAX_LINE_BYTES = 8 * 1024 * 1024
_STATUSES = ("ok", "infeasible", "crashed", "timeout")
_END_STATUSES = ("completed", "error")
_ERROR_KINDS = tuple(kind.value for kind in ErrorKind)


@dataclass
class CaseFile:
    """A case file as read back: header, trials, end line (None if unfinished), and read problems."""

    path: CaseLocation
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

    @property
    def intact(self) -> bool:
        """True unless the end line counts more trials than survived (a corrupt line lost some)."""
        return self.end is None or self.end.get("n_trials") in (None, len(self.trials))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _header_problem(h: dict) -> str | None:
    """What is wrong with a case header, or None. Only fields a reader relies on are checked;
    unknown fields are kept (newer writers of the same format version may add some)."""
    typed = {"task": str, "task_label": str, "target": str, "optimizer": str, "task_signature": str,
             "node_id": str, "optimizer_params": dict, "objective": dict}
    for key, kind in typed.items():
        if key in h and h[key] is not None and not isinstance(h[key], kind):
            return f"{key!r} must be a {'string' if kind is str else 'JSON object'}, got {h[key]!r:.60}"
    for key in ("seed", "budget"):
        if key in h and h[key] is not None and (not isinstance(h[key], int) or isinstance(h[key], bool) or h[key] < 0):
            return f"{key!r} must be a non-negative integer, got {h[key]!r:.60}"
    if h.get("budget_seconds") is not None and not _is_number(h["budget_seconds"]):
        return f"'budget_seconds' must be a number or null, got {h['budget_seconds']!r:.60}"
    direction = (h.get("objective") or {}).get("direction", "maximize")
    if direction not in direction_.DIRECTIONS:
        return f"objective direction must be 'maximize' or 'minimize', got {direction!r:.60}"
    if h.get("known_optimum") is not None and not _is_number(h["known_optimum"]):
        return f"'known_optimum' must be a number or null, got {h['known_optimum']!r:.60}"
    constraints = h.get("constraints")
    if constraints is not None and not (isinstance(constraints, list) and all(
            isinstance(c, dict) and isinstance(c.get("metric"), str) and _is_number(c.get("cap"))
            for c in constraints)):
        return f"'constraints' must be a list of objects with a metric name and a numeric cap, got {constraints!r:.60}"
    return None


def _trial_problem(t: dict) -> str | None:
    """What is wrong with a trial record, or None (the fields every reader uses)."""
    if not isinstance(t.get("trial"), int) or isinstance(t.get("trial"), bool) or t["trial"] < 0:
        return "'trial' must be a non-negative integer"
    if not isinstance(t.get("config"), dict):
        return "'config' must be a JSON object"
    o = t.get("outcome")
    if not isinstance(o, dict):
        return "'outcome' must be a JSON object"
    if o.get("status") not in _STATUSES:
        return f"outcome status must be one of {', '.join(_STATUSES)}"
    if not _is_number(o.get("cost_s")) or o["cost_s"] < 0:
        return "outcome cost_s must be a non-negative number"
    if o.get("objective") is not None and not _is_number(o["objective"]):
        return "outcome objective must be a number or null"
    error = o.get("error")
    if error is not None and not (isinstance(error, dict) and error.get("kind") in _ERROR_KINDS
                                  and isinstance(error.get("message", ""), str)):
        return f"outcome error must be an object with a kind among {', '.join(_ERROR_KINDS)} and a message"
    if o.get("metrics") is not None and not isinstance(o["metrics"], dict):
        return "outcome metrics must be a JSON object"
    violation = o.get("violation")
    if violation is not None and not (isinstance(violation, dict)
                                      and all(_is_number(v) and v >= 0 for v in violation.values())):
        return "outcome violation must map constraint names to non-negative numbers"
    return None


def _end_problem(e: dict) -> str | None:
    if e.get("status") not in _END_STATUSES:
        return f"end status must be one of {', '.join(_END_STATUSES)}"
    n = e.get("n_trials")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        return "end n_trials must be a non-negative integer"
    if e.get("error") is not None and not isinstance(e["error"], dict):
        return "end error must be a JSON object"
    return None


def _lines(path: CaseLocation) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, complete) for each line, never holding more than MAX_LINE_BYTES of one.
    ``.gz`` files and archive members are decompressed; undecodable bytes are replaced, so a damaged
    line is reported as corrupt rather than stopping the reader."""
    try:
        if isinstance(path, ArchivedCase):
            fh = io.TextIOWrapper(io.BytesIO(path.data()), encoding="utf-8", errors="replace")
        elif path.suffix == ".gz":
            fh = gzip.open(path, "rt", encoding="utf-8", errors="replace")
        else:
            fh = open(path, "r", encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ResultsFormatError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    with fh:
        lineno = 0
        while True:
            try:
                raw = fh.readline(MAX_LINE_BYTES)
            except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged stream
                raise ResultsFormatError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
            if not raw:
                return
            lineno += 1
            if len(raw) >= MAX_LINE_BYTES and not raw.endswith("\n"):
                while raw and not raw.endswith("\n"):  # skip the rest of the over-long line
                    raw = fh.readline(MAX_LINE_BYTES)
                yield lineno, "", False
                continue
            yield lineno, raw, raw.endswith("\n")


def scan_case_file(path: CaseLocation | str, problems: list[str], skipped: list[int] | None = None) -> Iterator[tuple[str, dict]]:
    """Stream a case file strictly, one record at a time: ``("case", header)`` first, then
    ``("trial", record)`` for each trial in order (numbered 0, 1, 2, ...) and ``("end", record)``.

    This is the one reader of the format: the runner, ``--resume`` and the leaderboard all use it.
    What can be skipped is skipped and described in ``problems`` (a torn last line, a corrupt or
    over-long line, a trial record with missing or mistyped fields, duplicate or out-of-order trial
    numbers: only the first contiguous run 0..n-1 is trusted). What makes the file unusable raises
    :class:`ResultsFormatError` with the file, the line and what was expected: no case header, a
    newer format version, a header with mistyped fields, a path that cannot be read. ``skipped``
    receives the numbers of torn and corrupt lines.
    """
    skipped = skipped if skipped is not None else []
    path = case_location(path)
    header_seen = False
    expected = 0
    gap_noted = False
    for lineno, raw, complete in _lines(path):
        where = f"{path}:{lineno}"
        if complete and not raw.strip():
            continue
        if not raw:
            problems.append(f"{where}: line longer than {MAX_LINE_BYTES} bytes, skipped")
            continue
        try:
            record = loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:
            kind = ("torn last line (the run was probably killed while writing it)" if not complete
                    else "corrupt line")
            problems.append(f"{where}: {kind}, skipped ({exc.__class__.__name__})")
            skipped.append(lineno)
            continue
        rtype = record.get("type")
        if rtype == "case":
            version = record.get("format_version")
            if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
                raise ResultsFormatError(
                    f"{path} was written by results format version {version!r:.40}; this deploybench reads versions "
                    f"up to {FORMAT_VERSION}. Upgrade deploybench to read it.")
            if header_seen:
                problems.append(f"{where}: a second case header, skipped")
                continue
            bad = _header_problem(record)
            if bad:
                raise ResultsFormatError(f"{where}: case header: {bad}")
            header_seen = True
            yield "case", record
        elif not header_seen:
            raise ResultsFormatError(f"{path} is not a deploybench case file (no case header line before line {lineno})")
        elif rtype == "trial":
            bad = _trial_problem(record)
            if bad:
                problems.append(f"{where}: corrupt trial record ({bad}), skipped")
                skipped.append(lineno)
            elif record["trial"] < expected:
                problems.append(f"{where}: trial {record['trial']} recorded twice; kept the first")
            elif record["trial"] > expected:
                if not gap_noted:
                    problems.append(f"{where}: trial numbers have gaps (expected {expected}, found "
                                    f"{record['trial']}); kept the first contiguous run")
                    gap_noted = True
            else:
                expected += 1
                yield "trial", record
        elif rtype == "end":
            bad = _end_problem(record)
            if bad:
                problems.append(f"{where}: corrupt end record ({bad}), skipped")
            else:
                yield "end", record
        else:
            problems.append(f"{where}: unknown record type {rtype!r:.40}, skipped")
    if not header_seen:
        raise ResultsFormatError(f"{path} is not a deploybench case file (no case header line)")


def read_case_file(path: CaseLocation | str) -> CaseFile:
    """Read a whole case file with :func:`scan_case_file`. A torn or corrupt line is skipped and
    reported in ``problems``; an unusable file raises :class:`ResultsFormatError`."""
    path = case_location(path)
    problems: list[str] = []
    header: dict = {}
    trials: list[dict] = []
    end = None
    skipped: list[int] = []
    for rtype, record in scan_case_file(path, problems, skipped):
        if rtype == "case":
            header = record
        elif rtype == "trial":
            trials.append(record)
        else:
            end = record
    return CaseFile(path=path, header=header, trials=trials, end=end, torn_line=skipped[-1] if skipped else None,
                    problems=problems)


def drop_lines_after_end(path: Path | str) -> int:
    """Remove what follows the end line of a finished, plain case file (a line torn by a process
    killed after the case ended, or appended by mistake); returns how many lines were removed. The
    file is replaced atomically; compressed (published) files, archived cases and files without an
    end line are left as they are."""
    path = case_location(path)
    if isinstance(path, ArchivedCase) or path.suffix == ".gz":
        return 0
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    last_end = None
    for i, raw in enumerate(lines):
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("type") == "end":
            last_end = i
    if last_end is None or last_end == len(lines) - 1:
        return 0
    tmp = path.with_name(path.name + ".repair")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(lines[:last_end + 1])
    os.replace(tmp, path)
    return len(lines) - last_end - 1


#: the names of case files: written plain by the runner, compressed in the published records
CASE_PATTERNS = ("seed_*.jsonl", "seed_*.jsonl.gz")
#: one published table's records: ``<optimizer>/seed_<n>.jsonl`` members of a solid xz-compressed tar
#: (see :mod:`deploybench.archive` for why this container)
ARCHIVE_SUFFIX = ".tar.xz"
#: members of one archive per pass, so reading a board decompresses each table once (a table is a few
#: tens of MB decompressed)
_ARCHIVES_KEPT = 2


def _is_case_name(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in CASE_PATTERNS)


def is_archive(path: Path) -> bool:
    """True for a records archive (``<task label>.tar.xz``)."""
    return path.name.endswith(ARCHIVE_SUFFIX)


@functools.lru_cache(maxsize=_ARCHIVES_KEPT)
def _archive_contents(path: str, mtime_ns: int, size: int) -> dict[str, bytes]:
    """The case members of one archive version (keyed by modification time and size, so a rewritten
    archive is read again), decompressed once: an xz stream cannot be entered in the middle."""
    try:
        with tarfile.open(path, "r:xz") as tar:
            return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()  # type: ignore[union-attr]
                    and _is_case_name(m.name.rsplit("/", 1)[-1])}
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError) as exc:
        raise ResultsFormatError(f"cannot read the records archive {path}: {getattr(exc, 'strerror', None) or exc}"
                                 ) from None


def _contents(archive: Path) -> dict[str, bytes]:
    try:
        st = archive.stat()
    except OSError as exc:
        raise ResultsFormatError(f"cannot read the records archive {archive}: {exc.strerror or exc}") from None
    return _archive_contents(str(archive), st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class ArchivedCase:
    """A case file inside a records archive; its text form is the path through the archive
    (``runs/edge_tight@edge.tar.xz/tba/seed_0.jsonl``), which :func:`case_location` turns back into it."""

    archive: Path
    member: str

    def __str__(self) -> str:
        return f"{self.archive.as_posix()}/{self.member}"

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def data(self) -> bytes:
        try:
            return _contents(self.archive)[self.member]
        except KeyError:
            raise ResultsFormatError(f"{self.archive} holds no case {self.member}") from None


#: a case file on disk, or a case inside a published archive
CaseLocation = Union[Path, ArchivedCase]


def case_location(path: CaseLocation | str) -> CaseLocation:
    """Where a case is: the file itself, or, for a path through an archive
    (``runs/edge_tight@edge.tar.xz/tba/seed_0.jsonl``), that member of the archive."""
    if isinstance(path, ArchivedCase):
        return path
    path = Path(path)
    text = path.as_posix()
    if ARCHIVE_SUFFIX + "/" not in text or path.exists():
        return path
    for parent in path.parents:
        if is_archive(parent) and parent.is_file():
            return ArchivedCase(parent, path.relative_to(parent).as_posix())
    return path


def archive_of(path: CaseLocation | str) -> Path | None:
    """The archive a case lies in, or None for a case file on disk."""
    location = case_location(path)
    return location.archive if isinstance(location, ArchivedCase) else None


def _order(path: CaseLocation) -> tuple[str, ...]:
    return tuple(str(path).split("/"))


def iter_case_files(root: CaseLocation | str) -> Iterator[CaseLocation]:
    """Every case (``seed_*.jsonl`` or ``seed_*.jsonl.gz``, on disk or inside a ``.tar.xz`` records
    archive) under ``root``, in sorted order, whatever the folder names between (``<task>/<optimizer>``
    or a parameter variant's ``<task>/<optimizer>[params]``); ``root`` may also be one case file or one
    archive."""
    if isinstance(root, ArchivedCase):
        yield root
        return
    root = Path(root)
    if root.is_file():
        if is_archive(root):
            yield from sorted((ArchivedCase(root, m) for m in _contents(root)), key=_order)
        else:
            yield root
        return
    found: list[CaseLocation] = [p for pattern in CASE_PATTERNS for p in root.rglob(pattern) if p.is_file()]
    for archive in root.rglob("*" + ARCHIVE_SUFFIX):
        if archive.is_file():
            found.extend(ArchivedCase(archive, m) for m in _contents(archive))
    yield from sorted(set(found), key=_order)


def write_manifest(out_dir: Path | str, manifest: dict) -> None:
    """Write ``manifest.json`` (this session) and append it to ``sessions.jsonl`` (all sessions)."""
    out = Path(out_dir)
    tmp = out / "manifest.json.tmp"
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")
        os.replace(tmp, out / "manifest.json")
        with open(out / "sessions.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, sort_keys=True, default=str, allow_nan=False) + "\n")
    except OSError as exc:
        try:  # a half-written temporary file is not a manifest: leave none behind
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise _write_error(out / "manifest.json", exc) from None
