"""What a run session prints, as pytest's terminal reporter does: the header, one progress line per case
(per trial with ``-v``), the summary table, the answer per task and the closing line.

The summary is scored by :func:`deploybench.scoring.summary.summarize`, the leaderboard's own function,
so ``deploybench leaderboard`` on the same results prints the same numbers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from . import __version__
from .machine import library_versions, machine_info
from .reporting import PROGRESS_LEGEND, answers, format_answers, next_step_line, trial_detail, trial_line
from .results import ResultsFormatError
from .runner import Case, CaseResult
from .scoring.columns import fmt_num
from .scoring.summary import summarize

if TYPE_CHECKING:
    from .session import Session

__all__ = ["TerminalReporter"]


class TerminalReporter:
    """Writes a :class:`~deploybench.session.Session`'s output to its ``out`` stream."""

    def __init__(self, session: "Session") -> None:
        self.session = session

    @property
    def out(self) -> Any:
        return self.session.out

    def write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def rule(self, title: str, char: str = "=") -> None:
        width = 100
        title = f" {title} "
        pad = max(2, (width - len(title)) // 2)
        self.write(char * pad + title + char * pad)

    def header(self) -> dict:
        info = machine_info(self.session.pm.hook)
        versions = library_versions()
        self.rule("deploybench session starts")
        self.write(f"platform {info['platform']} -- Python {info['python']}, deploybench {__version__}, "
                   + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "deploybench"))
        self.write(f"machine: {info['cpu']}, {info['cpu_count']} cores, {info['memory_gb']} GiB"
                   + "".join(f", {k}: {v}" for k, v in info.items()
                             if k not in ("platform", "python", "cpu", "cpu_count", "memory_gb", "hostname")))
        self.write("plugins: " + ", ".join(p.name for p in self.session.pm.loaded))
        for b in self.session.pm.broken:
            self.write(f"BROKEN PLUGIN {b.name} ({b.source}): {b.error}")
        firsts = {c.task_label: c for c in self.session.cases}
        for _, case in sorted(firsts.items()):
            task = self.session.task(case)
            line = f"target: {case.task_id} ({case.kind}, v{task.version}, signature {task.signature()})"
            extra = task.metadata.extra or {}
            if extra.get("header"):
                line += f" -- {extra['header']}"
            self.write(line)
        if self.session.executor != "serial" or self.session.workers > 1:
            live = any(c.kind == "live" for c in self.session.cases)
            describe = getattr(self.session.pm.executors().get(self.session.executor), "describe", None)
            self.write(describe(self.session.cases, self.session.workers, session=self.session) if describe else
                       f"executor: {self.session.executor} with {self.session.workers} workers"
                       + ("; live cases run one at a time so their timings do not interfere" if live else ""))
        self.write(f"results: {self.session.options.out_dir}" + (" (resuming)" if self.session.options.resume else ""))
        for note in self.session.resume_notes:
            self.write(note)
        self.write(f"collected {len(self.session.cases)} case{'s' if len(self.session.cases) != 1 else ''}")
        self.write()
        return info

    def case_line(self, r: CaseResult, done: int) -> str:
        pct = int(100 * done / max(1, len(self.session.cases)))
        if r.status == "error":
            tail = f"ERROR in {r.error['stage'] if r.error else '?'}: {r.error['type'] if r.error else ''}: " \
                   f"{(r.error or {}).get('message', '')[:120]}"
        else:
            best = "none" if r.best is None else f"{r.best:.4g}"
            waste = "-" if r.waste is None else f"{100 * r.waste:.0f}%"
            tail = f"best={best} waste={waste} cost={r.cost_s:.1f}s"
            if r.skipped:
                tail = "SKIPPED (finished earlier) " + tail
            elif r.replayed:
                tail += f" (resumed after {r.replayed} recorded trials)"
        glyphs = r.glyphs if self.session.verbosity >= 0 else ""
        if self.session.verbosity < 0:
            return f"{r.case.node_id} {'E' if r.status == 'error' else 'ok'} [{pct:3d}%]"
        return f"{r.case.node_id} {glyphs} {tail} [{pct:3d}%]"

    def trial_report(self, case: Case, record: dict) -> None:
        """``-v``: one line per trial; ``-vv``: with every metric, rounded."""
        built = self.session.task(case)  # built once per session
        report = trial_detail if self.session.verbosity >= 2 else trial_line
        self.write(report(record, built.objective.metric, [c.to_json() for c in built.constraints]))

    def summary_rows(self, groups: list, by_path: dict[str, CaseResult]) -> list[list]:
        """One row per task and optimizer: the leaderboard's numbers, plus this session's error counts."""
        rows = []
        for group in groups:
            penalised = group.penalty is not None
            for row in group.rows:
                mine = [by_path[c.path] for c in row.cases if c.path in by_path]
                best = row.best.mean if row.best is not None and penalised else None
                rows.append([
                    group.key.task_label, row.label, row.seeds, row.n_errors,
                    fmt_num(best) if best is not None else "none",
                    f"{round(row.success * row.seeds)}/{row.seeds}",
                    f"{100 * row.waste:.0f}%" if row.waste is not None else "-",
                    f"{row.ttff_trials:.1f}" if row.ttff_trials is not None else "-",
                    f"{row.cost:.1f}", sum(r.env_errors for r in mine),
                ])
        for r in self.session.results:  # a case that errored before its file was written
            if not r.path:
                rows.append([r.case.task_label, r.case.variant, 1, int(r.status == "error"), "none", "0/1", "-", "-",
                             f"{r.cost_s:.1f}", r.env_errors])
        return rows

    def summary(self) -> None:
        """The summary table and the answer per task, scored by :func:`deploybench.scoring.summary.summarize`
        (the leaderboard's own function), so ``deploybench leaderboard`` on these results prints the same
        best, success, waste, TTFF and cost for the same cases."""
        if not self.session.results:
            kept = self.session.in_flight_trials()
            self.rule("no case finished" if kept else "no cases ran")
            for path, n in kept:
                self.write(f"kept: {path} ({n} trial{'s' if n != 1 else ''}; --resume continues it)")
            return
        self.rule("summary", "-")
        by_path = {str(r.path): r for r in self.session.results if r.path}
        try:
            groups = summarize(list(by_path), statistics=False)
        except (OSError, ResultsFormatError) as exc:
            self.write(f"note: the summary could not read the case files back ({exc}); they are kept as written")
            groups = []
        rows = self.summary_rows(groups, by_path)
        self.write(tabulate(rows, headers=["task", "optimizer", "seeds", "errors", "best feasible (mean)", "found",
                                           "waste", "TTFF (trials)", "cost s/case", "env errors"],
                            tablefmt="simple", disable_numparse=True))
        self.write("best feasible: mean over seeds of each seed's best feasible objective, a seed that found nothing "
                   "scoring the task's penalty (as on the leaderboard); found: seeds with a feasible configuration; "
                   "waste: share of crashed, timed-out or infeasible trials; TTFF: trials to the first feasible one "
                   "(budget + 1 for a seed that found none); env errors: environment failures (machine problems, "
                   "not crash structure)")
        self.rule("the answer: best configuration found per task", "-")
        for line in format_answers(answers(groups)):
            self.write(line)
        errors = [r for r in self.session.results if r.status == "error"]
        if errors:
            self.rule("errors", "-")
            for r in errors:
                e = r.error or {}
                self.write(f"ERROR {r.case.node_id} in {e.get('stage')}: {e.get('type')}: {e.get('message', '')[:300]}")
                self.write(f"  traceback kept in {r.path}")
        n_err = len(errors)
        elapsed = time.time() - self.session.started
        parts = [f"{len(self.session.results) - n_err} cases completed"]
        if n_err:
            parts.append(f"{n_err} errored")
        if self.session.interrupted:
            parts.append(f"{len(self.session.cases) - len(self.session.results)} not run (interrupted)")
        self.rule(", ".join(parts) + f" in {elapsed:.2f}s")
        if len(self.session.results) > n_err:
            self.write(next_step_line(self.session.options.out_dir))
        if self.session.first_in_folder and self.session.verbosity >= 0:
            self.write(PROGRESS_LEGEND)
