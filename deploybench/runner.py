"""Running one case: the ask → validate → evaluate → tell loop, to its budget.

The harness never dies. An optimizer that raises (in its constructor, ``ask`` or ``tell``), hangs
past the per-ask limit, or suggests an invalid configuration ends *its own case* as an error with
the traceback kept in the case file; an evaluation that raises becomes a crashed outcome, and an
in-process evaluation past its time limit a ``timeout`` trial that ends the case. Every trial is
written and flushed as it ends, and ``resume=True`` replays an unfinished case's recorded trials
into a fresh optimizer (same seed) instead of measuring them again.

:func:`run_case` reads as its steps: build the task and optimizer (:func:`_build`,
:func:`_construct`), write the identity into the header (:func:`_header`), look at what an earlier
session left (:func:`_previous_session`: skip, continue or refuse), replay kept trials
(:func:`_replay`), then run the loop (:class:`_TrialLoop`) and write the end line (:func:`_run_prepared`).
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from . import direction as direction_
from . import __version__
from .identity import case_identity, identity_changes, variant_name
from .locking import ResultsFolderBusy, wait_for_case_file
from .fidelity import UnknownFidelityError, split_suggestion
from .optimizer import OptimizerContext, build_optimizer
from .outcome import ErrorKind, Outcome, counts_as_found
from .plugins import DeployBenchPluginManager, create_plugin_manager
from .errors import UsageError
from .results import (CaseWriter, ResultsFormatError, ResultsWriteError, case_path, drop_lines_after_end,
                      read_case_file)
from .space import InvalidConfigError
from .task import EvalContext, Task

__all__ = ["Case", "CaseResult", "RunOptions", "run_case", "summarize_trials", "GLYPHS", "SESSION_ERRORS",
           "CaseIdentityError", "ResultsExistError", "task_time_limit", "AskTimeout", "EvaluationTimeout"]

#: one character per trial in progress lines, like pytest's dots
GLYPHS = {"ok": ".", "infeasible": "i", "early_stopped": "e", "crashed": "C", "timeout": "T", "lower_fidelity": ","}


@dataclass(frozen=True)
class Case:
    """One optimizer × task × seed run. Picklable, so executors can ship it to other processes."""

    task: str
    target: str
    task_label: str
    optimizer: str
    seed: int
    budget: int
    budget_seconds: float | None = None
    optimizer_params: tuple[tuple[str, Any], ...] = ()
    kind: str = "analytic"
    #: the task's parameters that differ from their defaults (``--task-param``), sorted
    task_params: tuple[tuple[str, Any], ...] = ()

    @property
    def task_id(self) -> str:
        """The task as the node id names it: ``edge_tight[live]``, ``edge_tight[live][device_profile=edge]``."""
        return variant_name(f"{self.task}[{self.target}]", dict(self.task_params))

    @property
    def variant(self) -> str:
        """The optimizer with its non-default parameters, e.g. ``tba[T_init=0.9]`` (see
        :func:`deploybench.identity.variant_name`): each variant has its own folder."""
        return variant_name(self.optimizer, dict(self.optimizer_params))

    @property
    def node_id(self) -> str:
        return f"{self.task_id}::{self.variant}[seed={self.seed}]"

    def path(self, out_dir: Path | str) -> Path:
        return case_path(out_dir, self.task_label, self.variant, self.seed)


@dataclass(frozen=True)
class RunOptions:
    """Session-wide settings every executor passes to :func:`run_case` (picklable)."""

    out_dir: str
    plugin_args: tuple[str, ...] = ()
    resume: bool = False
    ask_timeout_s: float | None = None
    fsync: bool = False
    overwrite: bool = False
    #: evaluation time limit for in-process tasks (None: the task's own ``time_limit_s``, if any)
    eval_timeout_s: float | None = None
    #: with ``resume``: a case completed with a smaller budget continues from its trials instead of
    #: being run again (``deploybench tune --resume --budget N``: measured trials are never thrown away)
    extend: bool = False


@dataclass
class CaseResult:
    """What a case produced, as the session summary needs it."""

    case: Case
    status: str  # completed | error (an interrupted case raises instead: its file stays resumable)
    n_trials: int = 0
    best: float | None = None
    best_config: dict | None = None
    waste: float | None = None
    ttff: int | None = None
    cost_s: float = 0.0
    glyphs: str = ""
    duplicates: int = 0
    env_errors: int = 0
    error: dict | None = None
    path: str = ""
    replayed: int = 0
    skipped: bool = False
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["case"] = asdict(self.case)
        data["node_id"] = self.case.node_id
        return data


def _glyph(outcome: Mapping[str, Any]) -> str:
    if (outcome.get("fidelity") or "full") != "full":
        return GLYPHS["lower_fidelity"]
    if outcome.get("early_stopped"):
        return GLYPHS["early_stopped"]
    return GLYPHS[outcome["status"]]


def summarize_trials(trials: list[dict], direction: str = "maximize", recommendation: dict | None = None) -> dict:
    """Best feasible objective, waste, time to first feasible, cost and duplicates of a trial list.

    Only measured full-fidelity feasible outcomes count as found; ``recommendation`` (the end
    record's full-fidelity validation of what a multi-fidelity optimizer recommended) counts too."""
    best = None
    best_config = None
    ttff = None
    cost = 0.0
    wasted = 0
    duplicates = 0
    env = 0
    for t in trials:
        o = t["outcome"]
        cost += o["cost_s"]
        duplicates += bool(t.get("duplicate"))
        if counts_as_found(o):
            if ttff is None:
                ttff = t["trial"] + 1
            v = o.get("objective")
            if v is not None and direction_.better(v, best, direction):
                best, best_config = v, t["config"]
        elif o["status"] != "ok":
            wasted += 1
        if o.get("error") and o["error"]["kind"] == ErrorKind.ENVIRONMENT.value:
            env += 1
    if recommendation is not None and counts_as_found(recommendation["outcome"]):
        v = recommendation["outcome"].get("objective")
        if v is not None and direction_.better(v, best, direction):
            best, best_config = v, recommendation["config"]
    n = len(trials)
    return {
        "n_trials": n,
        "best": best,
        "best_config": best_config,
        "waste": (wasted / n) if n else None,
        "ttff": ttff,
        "cost_s": cost,
        "duplicates": duplicates,
        "env_errors": env,
        "glyphs": "".join(_glyph(t["outcome"]) for t in trials),
    }


class AskTimeout(Exception):
    """The optimizer's ``ask()`` did not return within ``--ask-timeout``."""


class EvaluationTimeout(Exception):
    """An in-process ``evaluate()`` did not return within its time limit."""


def _call_with_timeout(fn: Callable[[], Any], timeout: float | None, what: str = "ask()",
                       error: type[Exception] = AskTimeout) -> Any:
    """Run ``fn``; with a timeout, run it in a daemon thread and give up waiting after ``timeout`` s."""
    if timeout is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="deploybench-ask")
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(min(0.1, max(0.0, deadline - time.monotonic())))  # short joins: signals stay responsive
    if thread.is_alive():
        raise error(f"{what} did not return within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _error_record(stage: str, exc: BaseException) -> dict:
    return {
        "stage": stage,
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def evaluate_safely(task: Task, config: dict, context: EvalContext) -> tuple[Outcome, float]:
    """Evaluate, turning any exception into a crashed outcome (MemoryError → oom). Returns the
    outcome and the wall seconds the evaluation took."""
    t0 = time.perf_counter()
    level = task.fidelity(context.fidelity)
    try:
        outcome = task.evaluate_at(config, level.name, context)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"{type(task).__name__}.evaluate returned {type(outcome).__name__}, not an Outcome")
    except MemoryError as exc:
        wall = time.perf_counter() - t0
        crash = Outcome.crashed(ErrorKind.OOM, f"MemoryError: {exc}", cost_s=wall)
        return crash.at_fidelity(level.name, level.predicts), wall
    except Exception as exc:  # noqa: BLE001 - an evaluation error is a crash of that trial
        wall = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
        crash = Outcome.crashed(ErrorKind.RUNTIME, message, cost_s=wall)
        return crash.at_fidelity(level.name, level.predicts), wall
    return outcome, time.perf_counter() - t0


class CaseIdentityError(UsageError):
    """``--resume`` found a case file written by a different case identity (see
    :mod:`deploybench.identity`); continuing it would mix results, so the session refuses."""


class ResultsExistError(UsageError):
    """A case file already exists and neither ``resume`` nor ``overwrite`` was asked for."""


#: exceptions a case must not swallow: they stop the session (interrupted, refused, disk failed).
#: Executors re-raise these from their workers and turn anything else into that case's error.
SESSION_ERRORS: tuple[type[BaseException], ...] = (
    KeyboardInterrupt, UsageError, ResultsFormatError, ResultsWriteError, ResultsFolderBusy)


@dataclass
class _Prepared:
    """A case ready to run: its task, optimizer, header and the trials an earlier session recorded."""

    task: Task
    optimizer: Any
    header: dict
    replayed: list[dict]
    problems: list[str]


def run_case(
    case: Case,
    options: RunOptions,
    pm: DeployBenchPluginManager | None = None,
    on_trial: Callable[[Case, dict], None] | None = None,
    task: Task | None = None,
) -> CaseResult:
    """Run one case to its budget and write its JSONL file. Never raises for optimizer or task
    faults (they end the case as ``error``); the :data:`SESSION_ERRORS` propagate (after the file
    is left resumable): interrupted, refused (identity changed, newer format), disk failure.

    ``task``: a task built by the caller instead of the registered ``case.task`` (``deploybench
    tune`` builds one for the user's model); it is closed when the case ends, like a built one."""
    pm = pm or create_plugin_manager(options.plugin_args)
    started = time.perf_counter()
    path = case.path(options.out_dir)
    try:
        task, optimizer_cls = (task, pm.get_optimizer_class(case.optimizer)) if task is not None else _build(case, pm)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a task that cannot be built is this case's error
        return _error_case(case, path, options, _error_record("task", exc))
    try:
        try:
            optimizer = _construct(case, task, optimizer_cls)
        except Exception as exc:  # noqa: BLE001
            return _error_case(case, path, options, _error_record("optimizer constructor", exc),
                               _header(case, task, optimizer_cls, {}))
        header = _header(case, task, optimizer_cls, optimizer.get_params())
        previous = _previous_session(case, path, options, header)
        if previous is not None and previous.skip is not None:
            return previous.skip
        kept = previous.trials if previous is not None else []
        problems = previous.problems if previous is not None else []
        optimizer, replayed = _replay(case, task, optimizer_cls, optimizer, kept, problems)
        if replayed:
            header["resumed_from_trial"] = len(replayed)
        prepared = _Prepared(task, optimizer, header, replayed, problems)
        return _run_prepared(case, options, prepared, pm, on_trial, started, path)
    finally:
        task.close()


def _build(case: Case, pm: DeployBenchPluginManager) -> tuple[Task, Any]:
    spec = pm.get_task_spec(case.task)
    task = spec.build(case.target, dict(case.task_params))
    cls = pm.get_optimizer_class(case.optimizer)
    return task, cls


def _construct(case: Case, task: Task, optimizer_cls: Any) -> Any:
    context = OptimizerContext.for_task(task, budget=case.budget, seed=case.seed, budget_seconds=case.budget_seconds)
    return build_optimizer(optimizer_cls, context, case.optimizer_params)


def _header(case: Case, task: Task, optimizer_cls: Any, params: Mapping[str, Any]) -> dict:
    """The case line: what ran (the identity fields), on what, with which budget and versions."""
    identity = case_identity(task.signature(), case.optimizer, optimizer_cls, params)
    return {
        "node_id": case.node_id,
        "task": case.task,
        "target": case.target,
        "task_label": case.task_label,
        **({"task_params": dict(case.task_params)} if case.task_params else {}),
        "task_version": task.version,
        "task_kind": task.metadata.kind,
        "objective": {"metric": task.objective.metric, "direction": task.objective.direction},
        "constraints": [c.to_json() for c in task.constraints],
        "known_optimum": task.metadata.known_optimum,
        "penalty": task.metadata.penalty,
        "family_param": task.metadata.family_param,
        "best_family": task.metadata.best_family,
        "variant": case.variant,
        **identity,
        "deploybench_version": __version__,
        "seed": case.seed,
        "budget": case.budget,
        "budget_seconds": case.budget_seconds,
        "started_at": _now(),
    }


@dataclass
class _Previous:
    """What an earlier session left for this case: a finished result to skip, or trials to keep."""

    skip: CaseResult | None
    trials: list[dict]
    problems: list[str]


def _previous_session(case: Case, path: Path, options: RunOptions, header: dict) -> _Previous | None:
    """Read the case file an earlier session wrote (waiting for a writer still finishing). With
    ``resume``: skip a finished case, keep the trials of an unfinished one, refuse a file of another
    identity. With ``overwrite``: start afresh. Neither: refuse to touch the file."""
    if not path.exists():
        return None
    wait_for_case_file(path)
    if options.overwrite and not options.resume:
        return None
    if not options.resume:
        raise ResultsExistError(f"{path} already exists; use --resume to continue it or --overwrite to replace it")
    previous = read_case_file(path)
    changes = identity_changes(previous.header, header)
    if changes:
        if options.overwrite:
            return _Previous(None, [], [f"resume: {path} was written by another case identity "
                                        f"({'; '.join(changes)}); --overwrite: the case was rerun"])
        raise CaseIdentityError(identity_message(path, changes))
    problems = list(previous.problems)
    same_budget = (previous.header.get("budget") == case.budget
                   and previous.header.get("budget_seconds") == case.budget_seconds)
    if previous.completed and previous.intact and same_budget:
        if previous.torn_line is not None and (removed := drop_lines_after_end(path)):
            problems.append(f"resume: removed {removed} damaged line(s) after the end line of {path} "
                            "(the case had finished; nothing it recorded was lost)")
        summary = summarize_trials(previous.trials, header["objective"]["direction"],
                                   (previous.end or {}).get("recommendation"))
        return _Previous(CaseResult(case=case, status="completed", path=str(path), skipped=True, problems=problems,
                                    **{k: summary[k] for k in _SUMMARY_FIELDS}), [], problems)
    if previous.finished and previous.intact:
        if options.extend and previous.completed and not same_budget \
                and len(previous.trials) <= case.budget:
            return _Previous(None, previous.trials, problems)  # extended: keep every measured trial
        if not same_budget:
            problems.append(f"resume: {path} was run with budget {previous.header.get('budget')}; "
                            f"rerun with budget {case.budget}")
            return _Previous(None, [], problems)  # another budget: run again
        # an errored case continues after its last recorded trial: a hang or crash at trial N (recorded
        # as that trial's outcome) is not met again, and the trials before it are not measured again
        if previous.trials:
            problems.append(f"resume: {path} ended with an error after {len(previous.trials)} recorded trials; "
                            "continuing after them")
        return _Previous(None, previous.trials, problems)
    return _Previous(None, previous.trials, problems)


def identity_message(path: Path | str, changes: list[str]) -> str:
    return (f"{path} belongs to a different case ({'; '.join(changes)}); --resume would mix their results. "
            "Use another --out, or --overwrite to replace it")


def _replay(case: Case, task: Task, optimizer_cls: Any, optimizer: Any, kept: list[dict],
            problems: list[str]) -> tuple[Any, list[dict]]:
    """Tell a fresh optimizer (same seed) the trials an earlier session recorded, checking that it
    asks for the same configurations; an optimizer that cannot replay starts the case over."""
    replayed: list[dict] = []
    if not kept:
        return optimizer, replayed
    try:
        for record in kept:
            suggestion, fidelity = split_suggestion(optimizer.ask())
            if (task.space.key(suggestion) != task.space.key(record["config"])
                    or fidelity != (record["outcome"].get("fidelity") or "full")):
                raise RuntimeError(f"replay diverged at trial {record['trial']}")
            optimizer.tell(dict(record["config"]), Outcome.from_dict(record["outcome"]))
            replayed.append(record)
    except Exception as exc:  # noqa: BLE001 - an optimizer that cannot replay starts over
        problems.append(f"resume: could not replay the recorded trials ({exc}); the case was restarted")
        return _construct(case, task, optimizer_cls), []
    return optimizer, replayed


def _run_prepared(case: Case, options: RunOptions, prepared: _Prepared, pm: DeployBenchPluginManager,
                  on_trial: Callable[[Case, dict], None] | None, started: float, path: Path) -> CaseResult:
    """Write the header and kept trials, run the remaining trials, write the end line."""
    task = prepared.task
    writer = CaseWriter(path, fsync=options.fsync)
    try:
        writer.start(prepared.header, prepared.replayed)
        pm.hook.deploybench_case_start(case=case)
        loop = _TrialLoop(case, options, task, prepared.optimizer, prepared.replayed)

        def record_trial(record: dict) -> None:
            writer.write(record)
            pm.hook.deploybench_trial_end(case=case, record=record)
            if on_trial is not None:
                on_trial(case, record)

        error = loop.run(record_trial)
        recommendation = None
        if error is None and task.multi_fidelity:
            recommendation, error = loop.validate_recommendation()
        status = "error" if error else "completed"
        end = {"type": "end", "status": status, "error": error, "n_trials": len(loop.trials), "finished_at": _now()}
        if recommendation is not None:
            end["recommendation"] = recommendation
        writer.write(end)
    finally:
        writer.close()
    summary = summarize_trials(loop.trials, task.objective.direction, recommendation)
    result = CaseResult(case=case, status=status, error=error, path=str(path), replayed=len(prepared.replayed),
                        wall_s=time.perf_counter() - started, problems=prepared.problems,
                        **{k: summary[k] for k in _SUMMARY_FIELDS})
    pm.hook.deploybench_case_finish(case=case, result=result)
    return result


_SUMMARY_FIELDS = ("n_trials", "best", "best_config", "waste", "ttff", "cost_s", "glyphs", "duplicates", "env_errors")


class _TrialLoop:
    """The ask → validate → evaluate → tell loop of one case, from its kept trials to its budget."""

    def __init__(self, case: Case, options: RunOptions, task: Task, optimizer: Any, kept: list[dict]) -> None:
        self.case, self.options, self.task, self.optimizer = case, options, task, optimizer
        self.trials: list[dict] = list(kept)
        self.seen = {task.space.key(t["config"]) for t in kept}
        self.cum_cost = sum(t["outcome"]["cost_s"] for t in kept)
        self.feasible_found = any(counts_as_found(t["outcome"]) for t in kept)
        self.best = summarize_trials(kept, task.objective.direction)["best"]
        self.time_limit = options.eval_timeout_s if options.eval_timeout_s is not None else task_time_limit(task)

    def _budget_left(self) -> bool:
        case = self.case
        return len(self.trials) < case.budget and (case.budget_seconds is None or self.cum_cost < case.budget_seconds)

    def run(self, record_trial: Callable[[dict], None]) -> dict | None:
        """Run trials until the budget is spent; returns the error that ended the case, or None."""
        while self._budget_left():
            record, error = self._trial()
            if record is not None:
                record_trial(record)
                self.trials.append(record)
            if error is not None:
                return error
        return None

    def _trial(self) -> tuple[dict | None, dict | None]:
        task, i = self.task, len(self.trials)
        t0 = time.perf_counter()
        try:
            suggestion = _call_with_timeout(self.optimizer.ask, self.options.ask_timeout_s)
        except Exception as exc:  # noqa: BLE001
            return None, _error_record("ask", exc)
        t1 = time.perf_counter()
        suggestion, fidelity = split_suggestion(suggestion)
        try:
            task.fidelity(fidelity)
            task.space.validate(suggestion)
        except (InvalidConfigError, UnknownFidelityError) as exc:
            error = _error_record("validate", exc)
            error["suggestion"] = repr(suggestion)[:500]
            return None, error
        config = dict(suggestion)
        key = task.space.key(config) if fidelity == "full" else f"{task.space.key(config)}@{fidelity}"
        duplicate = key in self.seen
        self.seen.add(key)
        context = EvalContext(seed=self.case.seed, trial=i, feasible_found=self.feasible_found,
                              time_limit_s=self.time_limit, fidelity=fidelity)
        outcome, eval_wall, eval_error = self._evaluate(config, context)
        self.cum_cost += outcome.cost_s
        if outcome.counts_as_found:
            self.feasible_found = True
            if outcome.objective is not None and (self.best is None or task.objective.better(outcome.objective, self.best)):
                self.best = outcome.objective
        t2 = time.perf_counter()
        error = eval_error
        if error is None:
            try:
                self.optimizer.tell(dict(config), outcome)
            except Exception as exc:  # noqa: BLE001
                error = _error_record("tell", exc)
        t3 = time.perf_counter()
        record = {
            "type": "trial", "trial": i, "config": config, "outcome": outcome.to_dict(), "duplicate": duplicate,
            "best": self.best, "cum_cost_s": self.cum_cost,
            "ask_s": round(t1 - t0, 6), "eval_s": round(eval_wall, 6), "tell_s": round(t3 - t2, 6),
        }
        return record, error

    def validate_recommendation(self) -> tuple[dict | None, dict | None]:
        """Evaluate the optimizer's ``recommend()`` at full fidelity, apart from the budget (like a
        held-out test evaluation): returns the record for the end line (config, outcome, whether an
        earlier full evaluation was reused) and an error record if the optimizer failed. Optimizers
        without ``recommend`` are not asked (their best full-fidelity trial is their answer)."""
        recommend = getattr(self.optimizer, "recommend", None)
        if recommend is None:
            return None, None
        try:
            config = _call_with_timeout(recommend, self.options.ask_timeout_s, "recommend()")
            if config is None:
                return None, None
            config, _ = split_suggestion(config)
            self.task.space.validate(config)
        except Exception as exc:  # noqa: BLE001 - the recommendation is this case's error
            return None, _error_record("recommend", exc)
        config = dict(config)
        key = self.task.space.key(config)
        for t in reversed(self.trials):
            o = t["outcome"]
            if (o.get("fidelity") or "full") == "full" and self.task.space.key(t["config"]) == key:
                return {"config": config, "outcome": o, "reused_trial": t["trial"]}, None
        context = EvalContext(seed=self.case.seed, trial=len(self.trials), feasible_found=self.feasible_found,
                              time_limit_s=self.time_limit, fidelity="full")
        outcome, _, error = self._evaluate(config, context)
        return {"config": config, "outcome": outcome.to_dict(), "reused_trial": None}, error

    def _evaluate(self, config: dict, context: EvalContext) -> tuple[Outcome, float, dict | None]:
        """Evaluate; an in-process evaluation past its time limit becomes a ``timeout`` trial and
        ends the case (it may still be running in a thread of this process, so no further trial
        may share the task with it). Tasks that evaluate in a subprocess (live) enforce the limit
        themselves, through ``context.time_limit_s``."""
        in_process = self.task.metadata.kind != "live"
        if self.time_limit is None or not in_process:
            outcome, wall = evaluate_safely(self.task, config, context)
            return outcome, wall, None
        try:
            outcome, wall = _call_with_timeout(lambda: evaluate_safely(self.task, config, context),
                                               self.time_limit, "evaluate()", EvaluationTimeout)
            return outcome, wall, None
        except EvaluationTimeout as exc:
            message = (f"{exc}; the evaluation may still be running in this process, so the case stopped "
                       "(--resume continues it after this trial; raise the limit with --eval-timeout)")
            outcome = Outcome.timed_out(f"evaluation exceeded its {self.time_limit:g} s limit", cost_s=self.time_limit)
            outcome = outcome.at_fidelity(context.fidelity, self.task.fidelity(context.fidelity).predicts)
            return outcome, self.time_limit, {"stage": "evaluate", "type": "EvaluationTimeout", "message": message,
                                              "traceback": ""}


def task_time_limit(task: Task) -> float | None:
    """The evaluation time limit a task declares (``time_limit_s`` attribute), if any."""
    value = getattr(task, "time_limit_s", None)
    return float(value) if value is not None else None


def _error_case(case: Case, path: Path, options: RunOptions, error: dict, header: dict | None = None) -> CaseResult:
    """A case that could not start: record the error in its file, unless that would replace trials
    an earlier session recorded (then the error is only reported)."""
    result = CaseResult(case=case, status="error", error=error, path=str(path))
    if path.exists() and not options.overwrite:
        try:
            if read_case_file(path).trials:
                return result
        except ResultsFormatError:
            return result
    writer = CaseWriter(path, fsync=options.fsync)
    try:
        writer.start(header or {"node_id": case.node_id, "task": case.task, "target": case.target,
                                "task_label": case.task_label, "optimizer": case.optimizer, "variant": case.variant,
                                "seed": case.seed, "budget": case.budget, "budget_seconds": case.budget_seconds,
                                "started_at": _now()})
        writer.write({"type": "end", "status": "error", "error": error, "n_trials": 0, "finished_at": _now()})
    finally:
        writer.close()
    return result
