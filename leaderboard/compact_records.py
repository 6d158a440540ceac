"""Make published run records compact and reproducible: drop what changes between identical runs.

- removes the wall-clock fields the runner writes (``ask_s``, ``eval_s``, ``tell_s`` per trial,
  ``started_at`` / ``finished_at``), so regenerating the records with the same code gives the same
  bytes; scoring never reads these fields;
- stamps each case header with the software that produced it, where the runner did not already:
  ``optimizer_version`` (the distribution that ships the optimizer class) and
  ``optimizer_libraries`` (the versions of the libraries it depends on, e.g. smac and ConfigSpace
  for the SMAC adapter; numpy, scipy, optuna and scikit-learn for the built-ins) and ``python``;
  the leaderboard prints them in each table's notes;
- writes ``seed_N.jsonl.gz`` (gzip without a time stamp, so the bytes are reproducible too) in place
  of ``seed_N.jsonl``: the records are a fifth of their plain size.

Usage: python leaderboard/compact_records.py DIR [DIR ...]
"""

from __future__ import annotations

import functools
import gzip
import importlib.metadata as metadata
import json
import os
import platform
import re
import sys
from pathlib import Path

DROP = {"trial": ("ask_s", "eval_s", "tell_s"), "case": ("started_at",), "end": ("finished_at",)}
#: for optimizers shipped inside deploybench itself: the libraries their numerics depend on
CORE_LIBRARIES = ("numpy", "scipy", "optuna", "scikit-learn")


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
    """``optimizer_version`` and ``optimizer_libraries`` of the class named ``module.Class``."""
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


def compact_file(path: Path) -> Path:
    """Rewrite one case file compactly as ``<name>.jsonl.gz``; returns the new path."""
    lines = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            record = json.loads(raw)
            for key in DROP.get(record.get("type"), ()):
                record.pop(key, None)
            if record.get("type") == "case" and record.get("optimizer_class"):
                for key, value in software(record["optimizer_class"]).items():
                    record.setdefault(key, value)
            lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
    target = path if path.suffix == ".gz" else path.with_name(path.name + ".gz")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=9, mtime=0))
    os.replace(tmp, target)
    if target != path:
        path.unlink()
    return target


def main(argv: list[str]) -> int:
    n = 0
    for root in argv:
        for path in sorted([*Path(root).rglob("seed_*.jsonl"), *Path(root).rglob("seed_*.jsonl.gz")]):
            compact_file(path)
            n += 1
        for extra in ("manifest.json", "sessions.jsonl"):  # host names, dates, command lines
            (Path(root) / extra).unlink(missing_ok=True)
    print(f"compacted {n} case files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
