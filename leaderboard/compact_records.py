"""Make published run records compact and reproducible: drop what changes between identical runs.

Removes the wall-clock fields the runner writes (``ask_s``, ``eval_s``, ``tell_s`` per trial,
``started_at`` / ``finished_at``), so regenerating the records with the same code gives the same
bytes and the committed files stay small. Scoring never reads these fields.

Usage: python leaderboard/compact_records.py DIR [DIR ...]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

DROP = {"trial": ("ask_s", "eval_s", "tell_s"), "case": ("started_at",), "end": ("finished_at",)}


def compact_file(path: Path) -> None:
    lines = []
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            record = json.loads(raw)
            for key in DROP.get(record.get("type"), ()):
                record.pop(key, None)
            lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    n = 0
    for root in argv:
        for path in sorted(Path(root).rglob("seed_*.jsonl")):
            compact_file(path)
            n += 1
        for extra in ("manifest.json", "sessions.jsonl"):  # host names, dates, command lines
            (Path(root) / extra).unlink(missing_ok=True)
    print(f"compacted {n} case files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
