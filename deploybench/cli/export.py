"""``deploybench export``: run records as one Parquet or CSV file, one row per trial or per case.

The file's columns and their meaning are documented in docs/export.md (schema version
:data:`deploybench.export.EXPORT_SCHEMA`). Without RESULTS, the published leaderboard's records
(``leaderboard/runs``) are exported.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..export import CASE_COLUMNS, EXPORT_SCHEMA, TRIAL_COLUMNS, ExportError, case_rows, trial_rows, write_rows
from ..errors import UsageError

__all__ = ["add_parser", "run"]

FORMATS = ("parquet", "csv")


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser(
        "export", help="run records as a Parquet or CSV file (one row per trial or per case)",
        description="Flatten the case files under RESULTS into one table for pandas, polars or DuckDB: one row per "
                    "trial (identity, config.* and metric.* columns, outcome, cost, best so far) or, with --cases, "
                    "one per case (with 'score', the value the leaderboard averages). Parquet needs pyarrow "
                    '(pip install ".[export]" in the checkout); CSV needs nothing. Columns: docs/export.md.')
    p.add_argument("results", nargs="*", metavar="RESULTS",
                   help="results directories or case files (default: the published leaderboard/runs)")
    p.add_argument("--out", required=True, metavar="PATH", help="the file to write (.parquet or .csv)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="parquet or csv (default: from the --out suffix, else parquet)")
    p.add_argument("--cases", action="store_true", help="one row per case instead of one per trial")
    p.set_defaults(handler=run)


def _format(args: Any) -> str:
    if args.format:
        return args.format
    suffix = Path(args.out).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else "parquet"


def run(args: Any, pm: Any) -> int:
    from ..exit_codes import ExitCode

    roots = args.results or ["leaderboard/runs"]
    missing = [r for r in roots if not Path(r).exists()]
    if missing:
        raise UsageError(f"export: results path {missing[0]} does not exist"
                         + ("" if args.results else " (run from the repository root, or name RESULTS)"))
    fmt = _format(args)
    started = time.perf_counter()
    rows = case_rows(roots) if args.cases else trial_rows(roots)
    fixed = CASE_COLUMNS if args.cases else TRIAL_COLUMNS
    try:
        n_rows, n_cols = write_rows(rows, args.out, fmt, fixed,
                                    metadata={"deploybench_version": __version__,
                                              "level": "case" if args.cases else "trial"})
    except ExportError as exc:
        raise UsageError(f"export: {exc}") from None
    size = Path(args.out).stat().st_size
    print(f"wrote {args.out}: {n_rows} {'case' if args.cases else 'trial'} rows x {n_cols} columns, {fmt}, "
          f"{size / 1e6:.2f} MB, schema {EXPORT_SCHEMA}, in {time.perf_counter() - started:.1f} s")
    if n_rows == 0:
        print(f"note: no case files under {', '.join(roots)}")
    return ExitCode.OK
