"""Reference rows: numbers the papers printed, shown beside (never inside) the measured rows.

A references file is JSON::

    {"references": [{"task_label": "crashy_branin", "budget": 30,
                     "source": "TBA paper v2, Table 3", "note": "...",
                     "rows": [{"label": "TBA→TPE", "maps_to": "tba_tpe", "seeds": 10,
                               "best": -2.05, "best_std": 0.71, "waste": 0.30}]}]}

They match a measured group by task label and budget only: the papers' implementations differ
from ours, so they are context, not competitors, and never enter ranks or tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ReferenceRow", "ReferenceSet", "load_references"]


@dataclass(frozen=True)
class ReferenceRow:
    label: str
    maps_to: str | None = None
    seeds: int | None = None
    best: float | None = None
    best_std: float | None = None
    waste: float | None = None
    success: float | None = None
    discovery: float | None = None


@dataclass(frozen=True)
class ReferenceSet:
    task_label: str
    budget: int
    source: str
    note: str = ""
    rows: tuple[ReferenceRow, ...] = field(default_factory=tuple)


def load_references(path: Path | str | None) -> list[ReferenceSet]:
    """Read a references file; ``None`` gives no references."""
    if path is None:
        return []
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for entry in data.get("references", []):
        rows = tuple(ReferenceRow(**row) for row in entry.get("rows", []))
        out.append(ReferenceSet(task_label=entry["task_label"], budget=int(entry["budget"]), source=entry["source"],
                                note=entry.get("note", ""), rows=rows))
    return out
