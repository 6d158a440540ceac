"""A run session: execution of the collected cases through an executor, pytest-like reporting.

Collection (:mod:`deploybench.collection`) builds the cases. The session prints a header,
one progress line per case (per trial for slow tasks with ``-v``), a summary table and returns
an :class:`~deploybench.exit_codes.ExitCode`.

A session holds its results folder alone (:class:`~deploybench.locking.ResultsFolderLock`) and checks
it before any work: case files it would replace need ``--resume`` or ``--overwrite``, and a folder
holding results of another case identity is refused. SIGTERM and SIGHUP stop it like Ctrl-C: the
case in flight leaves its file resumable, the partial summary is printed, the exit code is
``INTERRUPTED``. A results disk that fails mid-run stops it the same way, saying why.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence, TextIO

from . import __version__
from .exit_codes import ExitCode
from .identity import identity_changes
from .locking import ResultsFolderBusy, ResultsFolderLock
from .machine import library_versions
from .plugins import DeployBenchPluginManager
from .errors import UsageError, unknown_name_message
from .results import FORMAT_VERSION, ResultsFormatError, ResultsWriteError, scan_case_file, write_manifest
from .reporting import glyph
from .runner import Case, CaseResult, RunOptions, identity_message
from .signals import signals_interrupt
from .terminal import TerminalReporter

__all__ = ["ExitCode", "Session"]


@dataclass
class Session:
    """One ``deploybench run``: what was asked, what ran, what to report."""

    pm: DeployBenchPluginManager
    cases: list[Case]
    options: RunOptions
    executor: str = "serial"
    workers: int = 1
    verbosity: int = 0
    exitfirst: bool = False
    argv: Sequence[str] = ()
    cli_options: Any = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    results: list[CaseResult] = field(default_factory=list)
    interrupted: bool = False
    stopped_by: str | None = None
    started: float = field(default_factory=time.time)
    first_in_folder: bool = False
    #: notes on what ``--resume`` leaves as it is (unfinished cases under other parameters)
    resume_notes: list[str] = field(default_factory=list)
    _tasks: dict = field(default_factory=dict, repr=False)  # (task, target, params) -> the task, built once per run

    def task(self, case: Case) -> Any:
        """The task of ``case`` (its name, target and task parameters), built once per session for the
        header, the identities, the manifest and the per-trial lines (each case still builds its own:
        cases never share state)."""
        key = (case.task, case.target, case.task_params)
        if key not in self._tasks:
            self._tasks[key] = self.pm.get_task_spec(case.task).build(case.target, dict(case.task_params))
        return self._tasks[key]

    def close_tasks(self) -> None:
        """Close the tasks :meth:`task` built."""
        for task in self._tasks.values():
            task.close()
        self._tasks.clear()

    # -- output ----------------------------------------------------------------------------------
    @property
    def terminal(self) -> TerminalReporter:
        return TerminalReporter(self)

    def write(self, text: str = "") -> None:
        """A line on the session's output (plugins' hooks write through this)."""
        self.terminal.write(text)

    def rule(self, title: str, char: str = "=") -> None:
        self.terminal.rule(title, char)

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Check, lock and run; returns the exit code. Bad input raises :class:`UsageError` before
        the header is printed and before anything is written."""
        executors = self.pm.executors()
        if self.executor not in executors:
            raise UsageError(unknown_name_message("executor", self.executor, executors))
        if Path(self.options.out_dir).exists() and not Path(self.options.out_dir).is_dir():
            raise UsageError(f"--out {self.options.out_dir} is a file, not a folder; choose a folder for the results")
        lock = ResultsFolderLock(self.options.out_dir)
        try:
            lock.acquire(self.argv)
        except ResultsFolderBusy as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"cannot write results to {self.options.out_dir}: {exc.strerror or exc} "
                             "(choose a writable folder with --out)") from None
        try:
            self.check_results_folder()
            with signals_interrupt():
                return self._run(executors[self.executor])
        except ResultsFolderBusy as exc:
            raise UsageError(str(exc)) from None
        finally:
            self.close_tasks()
            lock.release()

    def check_results_folder(self) -> None:
        """Refuse, before any work, a folder whose case files this run would replace without
        ``--resume`` or ``--overwrite``, or whose variant folders hold results of another identity."""
        existing = [c for c in self.cases if c.path(self.options.out_dir).exists()]
        if existing and not (self.options.resume or self.options.overwrite):
            first = existing[0].path(self.options.out_dir).relative_to(self.options.out_dir)
            raise UsageError(
                f"results folder {self.options.out_dir} already holds {len(existing)} of the {len(self.cases)} cases "
                f"this run would write (e.g. {first}); add --resume to continue them, --overwrite to replace "
                "them, or choose another --out")
        if self.options.resume:
            self.resume_notes = self._other_variants_left_unfinished()
        folders = {}
        for case in self.cases:
            folders.setdefault(case.path(self.options.out_dir).parent, case)
        identities: dict[tuple, dict | None] = {}
        selected = {c.path(self.options.out_dir) for c in self.cases}
        for folder, case in folders.items():
            if not folder.is_dir():
                continue
            key = (case.task, case.target, case.optimizer, case.optimizer_params)
            if key not in identities:
                identities[key] = self._identity(case)
            identity = identities[key]
            if identity is None:
                continue  # the case cannot be built; running it reports why
            for path in sorted(folder.glob("seed_*.jsonl")):
                if self.options.overwrite and path in selected:
                    continue  # replaced anyway
                header = _read_header(path)
                changes = identity_changes(header, identity)
                if changes and path in selected:
                    raise UsageError(identity_message(path, changes))
                if changes:  # a seed this run does not select: scored beside the new ones, it would mix
                    raise UsageError(
                        f"{path} belongs to a different case ({'; '.join(changes)}) and sits beside the cases this "
                        "run would write, so their results would be mixed; move it away, or choose another --out")

    def _other_variants_left_unfinished(self) -> list[str]:
        """``--resume`` continues the cases of this run's parameters only: name the unfinished case files
        of the same task, optimizer and seed under other parameters (another variant folder), which this
        run leaves as they are, so a changed ``--opt-param`` does not silently start over elsewhere."""
        from .results import ResultsFormatError, read_case_file

        notes = []
        mine = {c.path(self.options.out_dir) for c in self.cases}
        seen: set[Path] = set()
        for case in self.cases:
            path = case.path(self.options.out_dir)
            task_dir = path.parent.parent
            for folder in [task_dir / case.optimizer, *task_dir.glob(f"{case.optimizer}[[]*")]:
                other = folder / path.name
                if other in mine or other in seen or not other.is_file():
                    continue
                seen.add(other)
                try:
                    unfinished = read_case_file(other).end is None
                except (OSError, ResultsFormatError):
                    continue
                if unfinished:
                    notes.append(f"note: --resume continues the cases of these parameters ({path.parent.name}/); "
                                 f"the unfinished {other.relative_to(self.options.out_dir)} has other parameters "
                                 "and is left as it is (rerun with its parameters to continue it)")
        return notes

    def _identity(self, case: Case) -> dict | None:
        from .identity import case_identity
        from .runner import _construct

        try:
            task = self.task(case)
            cls = self.pm.get_optimizer_class(case.optimizer)
            optimizer = _construct(case, task, cls)
            return case_identity(task.signature(), case.optimizer, cls, optimizer.get_params())
        except Exception:  # noqa: BLE001 - reported by the case itself when it runs
            return None

    def _run(self, executor: Any) -> int:
        info = self.terminal.header()
        manifest = {
            "deploybench_version": __version__,
            "format_version": FORMAT_VERSION,
            "command_line": list(self.argv),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": info,
            "versions": library_versions(),
            "plugins": [p.__dict__ for p in self.pm.loaded],
            "broken_plugins": [{"name": b.name, "error": b.error} for b in self.pm.broken],
            "executor": self.executor,
            "workers": self.workers,
            "cases": [c.node_id for c in self.cases],
            "tasks": self._task_descriptions(),
        }
        self.first_in_folder = not (Path(self.options.out_dir) / "sessions.jsonl").exists()
        try:
            write_manifest(self.options.out_dir, manifest)
        except ResultsWriteError as exc:
            raise UsageError(f"{exc} (choose a writable folder with --out)") from None
        self.pm.hook.deploybench_sessionstart(session=self)
        try:
            self._execute(executor)
        except KeyboardInterrupt as exc:
            self.interrupted = True
            # our handlers raise KeyboardInterrupt("SIGTERM") etc.; Python's own for Ctrl-C raises it bare
            cause = f" by {exc.args[0]}" if exc.args and str(exc.args[0]).startswith("SIG") else " by SIGINT (Ctrl-C)"
            self.write("")
            self.write(f"!!! interrupted{cause}: finished cases are kept; the case in flight is resumable with --resume")
        except ResultsWriteError as exc:
            self.interrupted = True
            self.stopped_by = str(exc)
            self.write("")
            self.write(f"!!! stopped: {exc}. Finished cases and every trial written before are kept; "
                       "fix the disk (free space, permissions) and rerun with --resume")
        except (UsageError, ResultsFormatError, ResultsFolderBusy) as exc:
            self._finish(manifest, ExitCode.USAGE_ERROR)
            raise UsageError(str(exc)) from None
        exitstatus = self.exit_status()
        self.terminal.summary()
        self._finish(manifest, exitstatus)
        return exitstatus

    def _execute(self, executor: Any) -> None:
        serial = self.executor == "serial"
        stream_all = self.verbosity >= 1 and serial
        slow = stream_all or (serial and self.verbosity >= 0 and any(c.kind == "live" for c in self.cases))

        def on_case_start(case: Case) -> None:
            if stream_all:
                self.write(case.node_id)
            elif slow and case.kind == "live":
                self.out.write(f"{case.node_id} ")
                self.out.flush()

        def on_trial(case: Case, record: dict) -> None:
            if stream_all:
                self.terminal.trial_report(case, record)
            elif slow and case.kind == "live":
                self.out.write(glyph(record["outcome"]))
                self.out.flush()

        for result in executor.run(self.cases, self.options, pm=self.pm if serial else None,
                                   workers=self.workers, on_trial=on_trial, on_case_start=on_case_start,
                                   session=self):
            self.results.append(result)
            if not stream_all and slow and result.case.kind == "live":
                self.write("")
            for p in result.problems:
                self.write(f"  note: {p}")
            self.write(self.terminal.case_line(result, len(self.results)))
            if self.exitfirst and result.status == "error":
                self.write("stopping after the first error (-x)")
                break

    def _finish(self, manifest: dict, exitstatus: int) -> None:
        """Record how the session ended (also when it was interrupted or its disk failed)."""
        manifest["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest["exit_status"] = int(exitstatus)
        if self.stopped_by:
            manifest["stopped_by"] = self.stopped_by
        manifest["results"] = [{"node_id": r.case.node_id, "status": r.status, "n_trials": r.n_trials} for r in self.results]
        try:
            write_manifest(self.options.out_dir, manifest)
        except ResultsWriteError as exc:
            self.write(f"note: the session manifest was not updated ({exc})")
        self.pm.hook.deploybench_sessionfinish(session=self, exitstatus=int(exitstatus))

    def _task_descriptions(self) -> dict:
        out = {}
        firsts = {c.task_label: c for c in self.cases}
        for label, case in sorted(firsts.items()):
            desc = self.task(case).describe()
            desc.pop("space", None)
            out[label] = desc
        return out

    def exit_status(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if any(r.status == "error" for r in self.results):
            return ExitCode.CASE_ERRORS
        return ExitCode.OK

    def in_flight_trials(self) -> list[tuple[str, int]]:
        """(path, trials) of the unfinished case files this session started but did not finish."""
        from .results import read_case_file

        done = {r.case.node_id for r in self.results}
        kept = []
        for case in self.cases:
            path = case.path(self.options.out_dir)
            if case.node_id in done or not path.is_file():
                continue
            try:
                record = read_case_file(path)
            except (OSError, ResultsFormatError):
                continue
            if record.end is None and record.trials:
                kept.append((str(path), len(record.trials)))
        return kept

def _read_header(path: Path) -> dict:
    """A case file's header line only (no trials): enough to compare identities."""
    for rtype, record in scan_case_file(path, []):
        if rtype == "case":
            return record
    return {}  # pragma: no cover - scan_case_file raises without a header
