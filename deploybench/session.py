"""A run session: collection of cases, execution through an executor, pytest-like reporting.

Collection builds cases (task × optimizer × seed) with node ids such as
``crashy_branin[analytic]::tba[seed=3]``; ``-k`` filters them. The session prints a header,
one progress line per case (per trial for slow tasks with ``-v``), a summary table and returns
an :class:`~deploybench.exit_codes.ExitCode`.

A session holds its results folder alone (:class:`~deploybench.locking.ResultsFolderLock`) and checks
it before any work: case files it would replace need ``--resume`` or ``--overwrite``, and a folder
holding results of another case identity is refused. SIGTERM and SIGHUP stop it like Ctrl-C: the
case in flight leaves its file resumable, the partial summary is printed, the exit code is
``INTERRUPTED``. A results disk that fails mid-run stops it the same way, saying why.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from tabulate import tabulate

from . import __version__
from .exit_codes import ExitCode
from .identity import identity_changes
from .keyword import KeywordError, compile_keyword
from .locking import ResultsFolderBusy, ResultsFolderLock
from .machine import library_versions, machine_info
from .plugins import DeployBenchPluginManager, UsageError, unknown_name_message
from .results import FORMAT_VERSION, ResultsFormatError, ResultsWriteError, scan_case_file, write_manifest
from .reporting import PROGRESS_LEGEND, answers, format_answers, glyph, next_step_line, trial_detail, trial_line
from .runner import Case, CaseResult, RunOptions, identity_message
from .scoring.columns import fmt_num
from .scoring.summary import summarize

__all__ = ["ExitCode", "EXIT_OK", "EXIT_CASE_ERRORS", "EXIT_USAGE", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "collect",
           "Session", "parse_task_arg", "stop_signals_interrupt"]

#: aliases of :class:`ExitCode` members, for code written before it existed
EXIT_OK, EXIT_CASE_ERRORS, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = (
    ExitCode.OK, ExitCode.CASE_ERRORS, ExitCode.USAGE_ERROR, ExitCode.INTERNAL_ERROR, ExitCode.INTERRUPTED)
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread, as Ctrl-C
    does: what a scheduler, ``timeout``, a closed terminal or a container stop sends is handled the
    same way (the case in flight leaves its file resumable, the summary is printed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    saved = {signum: signal.signal(signum, interrupt) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
_TASK_ARG = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<target>[^\]]+)\])?$")


def parse_task_arg(arg: str) -> tuple[str, str | None]:
    """``edge_tight`` → (edge_tight, None); ``edge_tight[cpu]`` → (edge_tight, cpu)."""
    m = _TASK_ARG.match(arg.strip())
    if not m:
        raise UsageError(f"cannot read task {arg!r}; write NAME or NAME[TARGET], e.g. edge_tight[cpu]")
    return m.group("name"), m.group("target")


def _task_label(name: str, target: str, n_targets: int) -> str:
    if n_targets == 1 and "/" not in target:
        return name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target).stem if ("/" in target or target.endswith(".jsonl")) else target)
    return f"{name}@{safe}"


def collect(
    pm: DeployBenchPluginManager,
    *,
    tasks: Sequence[str] = (),
    optimizers: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    budget: int | None = None,
    budget_seconds: float | None = None,
    target: str | None = None,
    keyword: str = "",
    optimizer_params: dict[str, dict[str, Any]] | None = None,
) -> list[Case]:
    """Build the cases. Unknown names raise :class:`UsageError` with the known names and the
    closest match. With no tasks, every non-live task on its default target is collected; with no
    optimizers, every registered optimizer."""
    specs = pm.task_specs()
    optimizer_params = optimizer_params or {}
    task_args = list(tasks) or [name for name, s in specs.items() if s.kind != "live"]
    # only the selected optimizers are imported; with none selected, every one that imports
    # (one that cannot is reported as a broken plugin in the header)
    selections = [parse_optimizer_arg(arg) for arg in optimizers]
    classes = ({name: pm.get_optimizer_class(name) for name, _ in selections} if selections
               else pm.optimizer_classes())
    selections = selections or [(name, None) for name in sorted(classes)]
    opt_names = list(dict.fromkeys(name for name, _ in selections))
    for name in optimizer_params:
        if name not in opt_names:
            raise UsageError(f"--opt-param names optimizer {name!r}, which is not selected; selected: {', '.join(opt_names)}")
    variants = []  # (name, checked parameters), each once
    for name, value in selections:
        params = dict(optimizer_params.get(name, {}))
        if value is not None:
            params[_shorthand_param(name, classes[name], value)] = value
        checked = tuple(sorted(check_optimizer_params(name, classes[name], params).items()))
        if (name, checked) not in variants:
            variants.append((name, checked))
    try:
        match = compile_keyword(keyword)
    except KeywordError as exc:
        raise UsageError(str(exc)) from exc
    if budget is not None and budget < 1:
        raise UsageError(f"--budget must be a positive number of trials, got {budget}")
    if budget_seconds is not None and budget_seconds <= 0:
        raise UsageError(f"--budget-seconds must be positive, got {budget_seconds}")

    cases: list[Case] = []
    for arg in task_args:
        name, arg_target = parse_task_arg(arg)
        if name not in specs:
            raise UsageError(unknown_name_message("task", name, specs))
        spec = specs[name]
        chosen = arg_target or target or spec.default_target
        if chosen not in spec.targets and not (spec.accepts_paths and (os.sep in chosen or chosen.endswith((".jsonl", ".gz")))):
            also = " (or the path of a recorded table, such as my_device.jsonl.gz)" if spec.accepts_paths else ""
            raise UsageError(unknown_name_message("target", chosen, spec.targets, where=f" for task {name!r}", also=also))
        try:
            task = spec.build(chosen)
        except UsageError:
            raise
        except (FileNotFoundError, ValueError) as exc:
            raise UsageError(f"task {name}[{chosen}]: {exc}") from exc
        n_budget = budget if budget is not None else task.default_budget
        n_seconds = budget_seconds if budget_seconds is not None else task.default_budget_seconds
        label = _task_label(name, chosen, len(spec.targets))
        kind = task.metadata.kind
        task.close()
        for opt, params in variants:
            for seed in seeds:
                case = Case(task=name, target=chosen, task_label=label, optimizer=opt, seed=int(seed),
                            budget=n_budget, budget_seconds=n_seconds, optimizer_params=params, kind=kind)
                if match(case.node_id):
                    cases.append(case)
    return cases


def parse_optimizer_arg(arg: str) -> tuple[str, str | None]:
    """``"tba"`` -> ("tba", None); ``"optuna:GPSampler"`` -> ("optuna", "GPSampler"): the value of
    the parameter the optimizer names as its ``shorthand_param``."""
    name, sep, value = arg.partition(":")
    if sep and not value:
        raise UsageError(f"--optimizer {arg!r}: nothing after ':' (write NAME or NAME:VALUE)")
    return name, (value if sep else None)


def _shorthand_param(name: str, cls: type, value: str) -> str:
    param = getattr(cls, "shorthand_param", None)
    if not param:
        raise UsageError(f"--optimizer {name}:{value}: optimizer {name!r} takes no ':' value (only optimizers that "
                         f"declare a shorthand parameter do); set its parameters with --opt-param {name}.PARAM=VALUE")
    return param


def check_optimizer_params(name: str, cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``--opt-param`` values against the optimizer's constructor defaults before any work:
    unknown names and values of the wrong type are usage errors. Returns the parameters that differ
    from the defaults (so ``tba.T_init=<its default>`` is the plain ``tba`` case, not a variant), with
    integers given for float parameters turned into floats (``1`` and ``1.0`` are one variant)."""
    allowed = cls._param_names()
    defaults = _param_defaults(cls)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in allowed:
            raise UsageError(unknown_name_message("parameter", key, allowed, where=f" of optimizer {name!r}"))
        default = defaults.get(key, inspect.Parameter.empty)
        value = _coerce_param(name, key, value, default)
        if default is inspect.Parameter.empty or value != default or type(value) is not type(default):
            out[key] = value
    validate = getattr(cls, "validate_params", None)
    if validate is not None:
        full = {k: defaults[k] for k in allowed if k in defaults}
        full.update(params)
        try:
            validate(full)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"optimizer {name!r}: {exc}") from exc
    return out


def _param_defaults(cls: type) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in parameters:
            if p.default is not inspect.Parameter.empty:
                defaults[p.name] = p.default
    return defaults


def _coerce_param(optimizer: str, key: str, value: Any, default: Any) -> Any:
    """The value in the default's type where that is unambiguous; a usage error where it cannot be."""
    def bad(expected: str) -> UsageError:
        return UsageError(f"--opt-param {optimizer}.{key}={json.dumps(value)}: expected {expected} "
                          f"(the default is {default!r})")

    if default is inspect.Parameter.empty or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, (int, float, bool)):
            return json.dumps(value)  # `mode=1` was read as JSON; the parameter is text
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, list):
            raise bad("a JSON list such as [1, 2]")
        return value
    if isinstance(default, dict) and not isinstance(value, dict):
        raise bad("a JSON object")
    return value


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
    _task_facts: dict = field(default_factory=dict, repr=False)
    _tasks: dict = field(default_factory=dict, repr=False)  # (task, target) -> the task, built once per run

    def task(self, name: str, target: str) -> Any:
        """The task ``name[target]``, built once per session for the header, the identities, the
        manifest and the per-trial lines (each case still builds its own: cases never share state)."""
        key = (name, target)
        if key not in self._tasks:
            self._tasks[key] = self.pm.get_task_spec(name).build(target)
        return self._tasks[key]

    def close_tasks(self) -> None:
        """Close the tasks :meth:`task` built."""
        for task in self._tasks.values():
            task.close()
        self._tasks.clear()

    # -- output ----------------------------------------------------------------------------------
    def write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def rule(self, title: str, char: str = "=") -> None:
        width = 100
        title = f" {title} "
        pad = max(2, (width - len(title)) // 2)
        self.write(char * pad + title + char * pad)

    @property
    def options_dict(self) -> dict:
        return vars(self.cli_options) if self.cli_options is not None else {}

    def header(self) -> dict:
        info = machine_info(self.pm.hook)
        versions = library_versions()
        self.rule("deploybench session starts")
        self.write(f"platform {info['platform']} -- Python {info['python']}, deploybench {__version__}, "
                   + ", ".join(f"{k} {v}" for k, v in versions.items() if k != "deploybench"))
        self.write(f"machine: {info['cpu']}, {info['cpu_count']} cores, {info['memory_gb']} GiB"
                   + "".join(f", {k}: {v}" for k, v in info.items()
                             if k not in ("platform", "python", "cpu", "cpu_count", "memory_gb", "hostname")))
        self.write("plugins: " + ", ".join(p.name for p in self.pm.loaded))
        for b in self.pm.broken:
            self.write(f"BROKEN PLUGIN {b.name} ({b.source}): {b.error}")
        targets = sorted({(c.task, c.target, c.kind) for c in self.cases})
        for name, target, kind in targets:
            task = self.task(name, target)
            line = f"target: {name}[{target}] ({kind}, v{task.version}, signature {task.signature()})"
            extra = task.metadata.extra or {}
            if extra.get("header"):
                line += f" -- {extra['header']}"
            self.write(line)
        if self.executor != "serial" or self.workers > 1:
            live = any(c.kind == "live" for c in self.cases)
            describe = getattr(self.pm.executors().get(self.executor), "describe", None)
            self.write(describe(self.cases, self.workers, session=self) if describe else
                       f"executor: {self.executor} with {self.workers} workers"
                       + ("; live cases run one at a time so their timings do not interfere" if live else ""))
        self.write(f"results: {self.options.out_dir}" + (" (resuming)" if self.options.resume else ""))
        for note in self.resume_notes:
            self.write(note)
        self.write(f"collected {len(self.cases)} case{'s' if len(self.cases) != 1 else ''}")
        self.write()
        return info

    def _case_line(self, r: CaseResult, done: int) -> str:
        pct = int(100 * done / max(1, len(self.cases)))
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
        glyphs = r.glyphs if self.verbosity >= 0 else ""
        if self.verbosity < 0:
            return f"{r.case.node_id} {'E' if r.status == 'error' else 'ok'} [{pct:3d}%]"
        return f"{r.case.node_id} {glyphs} {tail} [{pct:3d}%]"

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
            with stop_signals_interrupt():
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
            task = self.task(case.task, case.target)
            cls = self.pm.get_optimizer_class(case.optimizer)
            optimizer = _construct(case, task, cls)
            return case_identity(task.signature(), case.optimizer, cls, optimizer.get_params())
        except Exception:  # noqa: BLE001 - reported by the case itself when it runs
            return None

    def _run(self, executor: Any) -> int:
        info = self.header()
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
        self.summary()
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
                self._trial_report(case, record)
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
            self.write(self._case_line(result, len(self.results)))
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

    def _trial_report(self, case: Case, record: dict) -> None:
        """``-v``: one line per trial; ``-vv``: with every metric, rounded."""
        task = self._task_facts.get(case.task_label)
        if task is None:
            built = self.task(case.task, case.target)
            task = (built.objective.metric, [c.to_json() for c in built.constraints])
            self._task_facts[case.task_label] = task
        report = trial_detail if self.verbosity >= 2 else trial_line
        self.write(report(record, *task))

    def _task_descriptions(self) -> dict:
        out = {}
        for name, target, label in sorted({(c.task, c.target, c.task_label) for c in self.cases}):
            desc = self.task(name, target).describe()
            desc.pop("space", None)
            out[label] = desc
        return out

    def exit_status(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if any(r.status == "error" for r in self.results):
            return ExitCode.CASE_ERRORS
        return ExitCode.OK

    def _in_flight_trials(self) -> list[tuple[str, int]]:
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

    def _summary_rows(self, groups: list, by_path: dict[str, CaseResult]) -> list[list]:
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
        for r in self.results:  # a case that errored before its file was written
            if not r.path:
                rows.append([r.case.task_label, r.case.variant, 1, int(r.status == "error"), "none", "0/1", "-", "-",
                             f"{r.cost_s:.1f}", r.env_errors])
        return rows

    def summary(self) -> None:
        """The summary table and the answer per task, scored by :func:`deploybench.scoring.summary.summarize`
        (the leaderboard's own function), so ``deploybench leaderboard`` on these results prints the same
        best, success, waste, TTFF and cost for the same cases."""
        if not self.results:
            kept = self._in_flight_trials()
            self.rule("no case finished" if kept else "no cases ran")
            for path, n in kept:
                self.write(f"kept: {path} ({n} trial{'s' if n != 1 else ''}; --resume continues it)")
            return
        self.rule("summary", "-")
        by_path = {str(r.path): r for r in self.results if r.path}
        try:
            groups = summarize(list(by_path), statistics=False)
        except (OSError, ResultsFormatError) as exc:
            self.write(f"note: the summary could not read the case files back ({exc}); they are kept as written")
            groups = []
        rows = self._summary_rows(groups, by_path)
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
        errors = [r for r in self.results if r.status == "error"]
        if errors:
            self.rule("errors", "-")
            for r in errors:
                e = r.error or {}
                self.write(f"ERROR {r.case.node_id} in {e.get('stage')}: {e.get('type')}: {e.get('message', '')[:300]}")
                self.write(f"  traceback kept in {r.path}")
        n_err = len(errors)
        elapsed = time.time() - self.started
        parts = [f"{len(self.results) - n_err} cases completed"]
        if n_err:
            parts.append(f"{n_err} errored")
        if self.interrupted:
            parts.append(f"{len(self.cases) - len(self.results)} not run (interrupted)")
        self.rule(", ".join(parts) + f" in {elapsed:.2f}s")
        if len(self.results) > n_err:
            self.write(next_step_line(self.options.out_dir))
        if self.first_in_folder and self.verbosity >= 0:
            self.write(PROGRESS_LEGEND)


def _read_header(path: Path) -> dict:
    """A case file's header line only (no trials): enough to compare identities."""
    for rtype, record in scan_case_file(path, []):
        if rtype == "case":
            return record
    return {}  # pragma: no cover - scan_case_file raises without a header
