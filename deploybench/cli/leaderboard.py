"""``deploybench leaderboard``: score run records into tables, statistics and plots.

With no RESULTS_DIR, it works on the published leaderboard of this checkout (``leaderboard/runs``,
``leaderboard/references.json``, ``leaderboard/plots``, ``leaderboard/README.md`` and
``leaderboard/index.html``), so ``deploybench leaderboard --check`` verifies that the committed
README and web page match their records, and ``deploybench leaderboard --reproduce N`` reruns N of
the published cases and compares them trial by trial.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..scoring import BUILTIN_COLUMNS, FORMATS, build_leaderboard, load_references, render
from ..scoring.columns import column_key
from ..scoring.metrics import DEFAULT_DISCOVERY_TOL

__all__ = ["add_parser", "run", "PUBLISHED"]

#: the published leaderboard's layout, relative to the working directory
PUBLISHED = {"runs": "leaderboard/runs", "readme": "leaderboard/README.md", "page": "leaderboard/index.html",
             "summary": "leaderboard/summary.json", "optimizers": "leaderboard/optimizers.json",
             "references": "leaderboard/references.json", "plots": "leaderboard/plots"}


def add_parser(sub: Any, pm: Any) -> None:
    p = sub.add_parser(
        "leaderboard", help="score run records: tables, statistics, plots",
        description="Score the case files under RESULTS_DIR: one table per task, task signature and budget; "
                    "average ranks, Friedman and Wilcoxon-Holm tests across tasks; optional plots. "
                    "Without RESULTS_DIR, the published leaderboard (leaderboard/) is used.")
    p.add_argument("results", nargs="*", metavar="RESULTS_DIR", help="results directories or case files")
    p.add_argument("--format", choices=FORMATS, default="github", help="output format (default: github markdown)")
    p.add_argument("--out", default=None, metavar="FILE", help="write to FILE instead of standard output")
    p.add_argument("--plots", default=None, metavar="DIR", help="also draw the figures (PNG and SVG) into DIR")
    p.add_argument("--references", default=None, metavar="FILE",
                   help="JSON file of reference rows (numbers printed by papers), shown apart from measured rows")
    p.add_argument("--check", action="store_true",
                   help="regenerate the text and compare it with --out (default: the published "
                        "leaderboard/README.md and leaderboard/index.html); exit 1 with a diff when they differ")
    p.add_argument("--reproduce", type=_count, default=None, metavar="N",
                   help="rerun N of the recorded cases (chosen across tasks and optimizers) and compare them with "
                        "their records trial by trial; exit 1 when any diverges")
    p.add_argument("--discovery-tol", type=float, default=DEFAULT_DISCOVERY_TOL, metavar="X",
                   help="for tasks without a best family: discovery = regret <= X × random search's mean regret "
                        f"(default {DEFAULT_DISCOVERY_TOL:g})")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the tests (default 0.05)")
    p.add_argument("--title", default="DeployBench leaderboard", help="document title")
    p.add_argument("--optimizers-info", default=None, metavar="FILE",
                   help="JSON of `deploybench list optimizers --json` describing the optimizers (default: the "
                        "published leaderboard/optimizers.json for the published board, else this installation)")
    p.set_defaults(handler=run)


def _published_defaults(args: argparse.Namespace, references: str | None, links: str | None
                        ) -> tuple[list[str], str | None, str | None, list[tuple[Path, str]]]:
    """Without RESULTS_DIR: the published records, references and figures, and the files --check compares."""
    if not Path(PUBLISHED["runs"]).is_dir():
        raise UsageError(f"no RESULTS_DIR given and no published records at {PUBLISHED['runs']} "
                         f"(run it from the repository root, or name a results directory)")
    references = references or (PUBLISHED["references"] if Path(PUBLISHED["references"]).exists() else None)
    checks: list[tuple[Path, str]] = []
    if args.check and args.out is None:
        checks = [(Path(PUBLISHED["readme"]), "github"), (Path(PUBLISHED["page"]), "html")]
        if Path(PUBLISHED["summary"]).exists():
            checks.append((Path(PUBLISHED["summary"]), "summary"))
    # the published README shows the published figures
    return [PUBLISHED["runs"]], references, links or PUBLISHED["plots"], checks


def _optimizer_info(path: str | None, pm: Any) -> dict[str, dict]:
    """What each optimizer is: from ``path`` (the published board keeps a copy, so the page does not
    depend on which plugins are installed where it is checked), else from this installation."""
    import json

    if path is not None and Path(path).is_file():
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"--optimizers-info {path}: not JSON ({exc})") from None
    if path is not None and Path(path) != Path(PUBLISHED["optimizers"]):
        raise UsageError(f"--optimizers-info {path} does not exist")
    from .listing import optimizer_info

    return optimizer_info(pm)


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"--reproduce takes a positive number of cases, got {text!r}")
    return n


def _posix_rel(target: str, start: Path) -> str:
    return Path(os.path.relpath(os.path.abspath(target), os.path.abspath(start))).as_posix()


def _metrics(pm: Any) -> list[Any]:
    metrics = []
    for m in pm.leaderboard_metrics():
        if not getattr(m, "name", None) or not callable(getattr(m, "compute", None)):
            raise UsageError(f"leaderboard metric {m!r} needs a 'name' and a 'compute(case_summaries)' method")
        metrics.append(m)
    names = [m.name for m in metrics]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(f"leaderboard metric names registered twice: {', '.join(dupes)}")
    builtin = {column_key(m) for m in BUILTIN_COLUMNS} | {m.name for m in BUILTIN_COLUMNS}
    clashes = sorted(m.name for m in metrics if m.name in builtin or column_key(m) in builtin)
    if clashes:
        raise UsageError(f"leaderboard metric names clash with built-in columns: {', '.join(clashes)}; "
                         f"built-in: {', '.join(sorted(column_key(m) for m in BUILTIN_COLUMNS))}")
    return metrics


def _check(path: Path, text: str, n_cases: int) -> bool:
    """Compare ``text`` with the file at ``path``; print a diff when they differ."""
    if not path.exists():
        print(f"deploybench leaderboard --check: {path} does not exist", file=sys.stderr)
        return False
    committed = path.read_text(encoding="utf-8")
    if committed == text:
        print(f"leaderboard up to date: {path} matches {n_cases} case files")
        return True
    diff = difflib.unified_diff(committed.splitlines(keepends=True), text.splitlines(keepends=True),
                                fromfile=f"{path} (committed)", tofile=f"{path} (regenerated)")
    sys.stdout.writelines(diff)
    print(f"\nleaderboard out of date: {path} differs from what its records give; "
          f"regenerate it (leaderboard/regenerate.sh)", file=sys.stderr)
    return False


def _reproduce(results: list[str], n: int) -> int:
    from ..scoring.reproduce import choose_cases, load_records, reproduce_case
    from .main import main

    records = load_records(results)
    if not records:
        raise UsageError(f"no case files (seed_*.jsonl or seed_*.jsonl.gz) under {', '.join(results)}")
    chosen = choose_cases(records, n)
    pairs = {(r.task_label, r.optimizer) for r in chosen}
    print(f"reproducing {len(chosen)} of {len(records)} recorded cases ({len({p[0] for p in pairs})} tasks, "
          f"{len({p[1] for p in pairs})} optimizers), trial by trial", flush=True)
    verdicts = []
    for record in chosen:
        verdict = reproduce_case(record, main)
        verdicts.append(verdict)
        print(verdict.line(), flush=True)
    same = sum(v.status == "identical" for v in verdicts)
    print(f"{same} identical, {len(verdicts) - same} diverged or not rerun, of {len(verdicts)} cases")
    return 0 if same == len(verdicts) else 1


def run(args: argparse.Namespace, pm: Any) -> int:
    results = list(args.results)
    out, plots, references = args.out, args.plots, args.references
    links = plots  # the folder image links point to (figures are drawn only with --plots)
    checks: list[tuple[Path, str]] = []  # (file, format) that --check compares
    if args.reproduce is not None and args.check:
        raise UsageError("--reproduce reruns cases and --check compares rendered text: give one of them")
    if not results:
        results, references, links, checks = _published_defaults(args, references, links)
    published = [Path(r) for r in results] == [Path(PUBLISHED["runs"])]
    if args.check and out is None and not checks:
        raise UsageError("--check compares with a file: give --out FILE")
    for r in results:
        if not Path(r).exists():
            raise UsageError(f"results path {r} does not exist")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.reproduce is not None:
        return _reproduce(results, args.reproduce)
    if args.check and not checks:
        checks = [(Path(out), args.format)]

    info = _optimizer_info(args.optimizers_info or (PUBLISHED["optimizers"] if published else None), pm)
    board = build_leaderboard(results, extra_metrics=_metrics(pm), references=load_references(references),
                              discovery_tol=args.discovery_tol, alpha=args.alpha)
    if not board.groups:
        raise UsageError(f"no case files (seed_*.jsonl or seed_*.jsonl.gz) under {', '.join(results)}")

    def text_for(target: str | None, fmt: str) -> str:
        base = Path(target).parent if target else Path(".")
        plots_rel = _posix_rel(links, base) if links else None
        sources = ", ".join(f"`{_posix_rel(r, base)}`" for r in results)
        preamble = (f"Generated by `deploybench leaderboard` from the run records in {sources}; do not edit by "
                    f"hand. Regenerating from the same records gives the same text, and `deploybench leaderboard "
                    f"--check` fails when this file and the records disagree.")
        return render(board, fmt, plots_rel=plots_rel, preamble=preamble, title=args.title,
                      records_base=str(base) if target else None, optimizer_info=info)

    if args.check:
        ok = [_check(path, text_for(str(path), fmt), board.n_cases) for path, fmt in checks]
        return 0 if all(ok) else 1
    text = text_for(out, args.format)

    if plots and not args.check:
        from ..scoring.plots import write_plots

        written = write_plots(board, plots)
        print(f"wrote {len(written)} figure files to {plots}", file=sys.stderr)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {out} ({len(board.groups)} tables, {board.n_cases} cases)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for problem in board.problems[:20]:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
