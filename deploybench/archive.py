"""Published records: one compact, reproducible archive per leaderboard table.

``deploybench run`` writes one file per case (``<task>/<optimizer>/seed_<n>.jsonl``), which is what a
killed run needs: each trial is flushed as it ends. A published board of 17 tables is 8,000 such
files; as a repository they are slow to clone and 2.5 times their size on disk (4 KB blocks). So the
published records keep the very same case files, compacted, in one archive per table,
``<task label>.tar.xz`` holding ``<optimizer>/seed_<n>.jsonl``:

- the readers of :mod:`deploybench.results` read a case inside an archive wherever they read a case file
  (``deploybench leaderboard``, ``--check``, ``--reproduce`` and ``export`` work on the archives directly);
- ``tar xf edge_tight@edge.tar.xz`` gives back exactly the layout ``run`` writes; tar and xz are in
  every system and in Python's standard library (no extra dependency);
- a solid xz stream compresses the cases of a table together: their headers repeat the task, the
  optimizer and its software, and their trials the same configurations. On the published board a
  deployment table is 43 MB of JSON lines, 6.9 MB as per-case gzip files (or a ZIP, which compresses
  each member alone), 5.0 MB as one gzip stream and 1.0 MB as one xz stream, which decompresses in
  0.1 s; reading one case means decompressing its table, which ``--reproduce`` can afford;
- the bytes are reproducible: members are sorted, time-stamped 0 and owned by uid 0, at one xz preset,
  and compaction drops what changes between identical runs:

  * the wall-clock fields the runner writes (``ask_s``, ``eval_s``, ``tell_s`` per trial, ``started_at``,
    ``finished_at``); scoring never reads them;
  * nothing else: the case header keeps its identity, and the software that produced it is stamped in
    where the runner did not already (``optimizer_version``, ``optimizer_libraries``: the versions of
    the libraries the optimizer's distribution depends on, ``python``), for the tables' provenance notes.

:func:`pack_runs` merges a results folder into a folder of archives, replacing only the
(task, optimizer) pairs that the new results hold, so one group can be refreshed without rerunning
the others.
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import io
import json
import os
import platform
import re
import tarfile
from pathlib import Path
from typing import Iterable

from .results import ARCHIVE_SUFFIX, CaseLocation, is_archive, iter_case_files, read_case_file

__all__ = ["compact_case", "write_archive", "pack_runs", "software", "DROPPED_FIELDS"]

#: per record type, the wall-clock fields compaction drops
DROPPED_FIELDS = {"trial": ("ask_s", "eval_s", "tell_s"), "case": ("started_at",), "end": ("finished_at",)}
#: for optimizers shipped inside deploybench itself: the libraries their numerics depend on
CORE_LIBRARIES = ("numpy", "scipy", "optuna", "scikit-learn")
XZ_PRESET = 6  # xz's default: an 8 MB dictionary, about 9 MB of memory to decompress


@functools.lru_cache(maxsize=None)
def _distribution_of(module: str) -> str | None:
    dists = metadata.packages_distributions().get(module.split(".")[0]) or []
    return dists[0] if dists else None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def software(optimizer_class: str) -> dict:
    """``optimizer_version``, ``optimizer_libraries`` and ``python`` for the class named
    ``module.Class``, from the installed distributions ({} when its module belongs to none)."""
    dist = _distribution_of(optimizer_class)
    if dist is None:
        return {}
    if dist == "deploybench":
        names = list(CORE_LIBRARIES)
    else:
        names = []
        for req in metadata.requires(dist) or []:
            if "extra ==" in req:
                continue
            name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
            if name and name.lower() != "deploybench":
                names.append(name)
    libs = {n: v for n in names if (v := _version(n)) is not None}
    return {"optimizer_version": f"{dist} {_version(dist)}", "optimizer_libraries": libs,
            "python": platform.python_version()}


def compact_case(path: CaseLocation | str) -> str:
    """One case's text, compacted: read by the strict reader (a torn or corrupt line is left out),
    timings dropped, software stamped into the header where missing."""
    case = read_case_file(path)
    header = {k: v for k, v in case.header.items() if k not in DROPPED_FIELDS["case"]}
    if header.get("optimizer_class"):
        for key, value in software(str(header["optimizer_class"])).items():
            header.setdefault(key, value)
    records = [header]
    records += [{k: v for k, v in t.items() if k not in DROPPED_FIELDS["trial"]} for t in case.trials]
    if case.end is not None:
        records.append({k: v for k, v in case.end.items() if k not in DROPPED_FIELDS["end"]})
    return "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in records)


def write_archive(target: Path | str, members: dict[str, str]) -> Path:
    """Write ``members`` (name -> text) as a reproducible ``.tar.xz`` at ``target``, atomically."""
    target = Path(target)
    if not is_archive(target):
        raise ValueError(f"a records archive is named <task label>{ARCHIVE_SUFFIX}, not {target.name}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", preset=XZ_PRESET, format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            data = members[name].encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)
    return target


def _member_name(path: CaseLocation) -> tuple[str, str]:
    """(task folder, ``<optimizer folder>/seed_<n>.jsonl``) of a case file under a results folder."""
    parts = str(path).replace("\\", "/").split("/")
    name = parts[-1][:-3] if parts[-1].endswith(".gz") else parts[-1]
    return parts[-3], f"{parts[-2]}/{name}"


def pack_runs(sources: Iterable[Path | str], dest: Path | str) -> dict[str, int]:
    """Merge the case files under ``sources`` (results folders laid out as ``run`` writes them, at any
    depth) into ``dest/<task label>.tar.xz``. In each archive, the optimizer folders present in the sources
    replace the archive's members of the same folders; the others are kept. Returns the number of cases
    written per archive."""
    dest = Path(dest)
    new: dict[str, dict[str, str]] = {}
    for source in sources:
        for path in iter_case_files(source):
            task, member = _member_name(path)
            new.setdefault(task, {})[member] = compact_case(path)
    counts: dict[str, int] = {}
    for task, members in sorted(new.items()):
        target = dest / f"{task}{ARCHIVE_SUFFIX}"
        replaced = {m.split("/", 1)[0] for m in members}
        kept: dict[str, str] = {}
        if target.is_file():
            kept = {c.member: c.data().decode("utf-8") for c in iter_case_files(target)
                    if c.member.split("/", 1)[0] not in replaced}  # type: ignore[union-attr]
        write_archive(target, {**kept, **members})
        counts[target.name] = len(kept) + len(members)
    return counts
