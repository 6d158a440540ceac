"""Running one case: the ask → validate → evaluate → tell loop, to its budget.

The harness never dies. An optimizer that raises (in its constructor, ``ask`` or ``tell``), hangs
past the per-ask limit, or suggests an invalid configuration ends *its own case* as an error with
the traceback kept in the case file; an evaluation that raises becomes a crashed outcome. Every
trial is written and flushed as it ends, and ``resume=True`` replays an unfinished case's recorded
trials into a fresh optimizer (same seed) instead of measuring them again.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from .outcome import ErrorKind, Outcome, Status
from .plugins import DeployBenchPluginManager, UsageError, create_plugin_manager
from .results import CaseWriter, ResultsFormatError, case_path, read_case_file
from .space import InvalidConfigError
from .task import EvalContext, Task

__all__ = ["Case", "CaseResult", "RunOptions", "run_case", "summarize_trials", "GLYPHS"]

#: one character per trial in progress lines, like pytest's dots
GLYPHS = {"ok": ".", "infeasible": "i", "early_stopped": "e", "crashed": "C", "timeout": "T"}


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

    @property
    def node_id(self) -> str:
        return f"{self.task}[{self.target}]::{self.optimizer}[seed={self.seed}]"

    def path(self, out_dir: Path | str) -> Path:
        return case_path(out_dir, self.task_label, self.optimizer, self.seed)


@dataclass(frozen=True)
class RunOptions:
    """Session-wide settings every executor passes to :func:`run_case` (picklable)."""

    out_dir: str
    plugin_args: tuple[str, ...] = ()
    resume: bool = False
    ask_timeout_s: float | None = None
    fsync: bool = False


@dataclass
class CaseResult:
    """What a case produced, as the session summary needs it."""

    case: Case
    status: str  # completed | error | interrupted
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
    if outcome.get("early_stopped"):
        return GLYPHS["early_stopped"]
    return GLYPHS[outcome["status"]]


def summarize_trials(trials: list[dict], direction: str = "maximize") -> dict:
    """Best feasible objective, waste, time to first feasible, cost and duplicates of a trial list."""
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
        if o["status"] == "ok":
            if ttff is None:
                ttff = t["trial"] + 1
            v = o["objective"]
            if v is not None and (best is None or (v > best if direction == "maximize" else v < best)):
                best, best_config = v, t["config"]
        else:
            wasted += 1
        if o.get("error") and o["error"]["kind"] == ErrorKind.ENVIRONMENT.value:
            env += 1
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


class _AskTimeout(Exception):
    pass


def _call_with_timeout(fn: Callable[[], Any], timeout: float | None) -> Any:
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
    thread.join(timeout)
    if thread.is_alive():
        raise _AskTimeout(f"ask() did not return within {timeout:g} s")
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
    try:
        outcome = task.evaluate(config, context)
        if not isinstance(outcome, Outcome):
            raise TypeError(f"{type(task).__name__}.evaluate returned {type(outcome).__name__}, not an Outcome")
    except MemoryError as exc:
        wall = time.perf_counter() - t0
        return Outcome.crashed(ErrorKind.OOM, f"MemoryError: {exc}", cost_s=wall), wall
    except Exception as exc:  # noqa: BLE001 - an evaluation error is a crash of that trial
        wall = time.perf_counter() - t0
        message = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
        return Outcome.crashed(ErrorKind.RUNTIME, message, cost_s=wall), wall
    return outcome, time.perf_counter() - t0


def _build(case: Case, pm: DeployBenchPluginManager) -> tuple[Task, Any]:
    spec = pm.get_task_spec(case.task)
    task = spec.build(case.target)
    cls = pm.get_optimizer_class(case.optimizer)
    return task, cls


def run_case(
    case: Case,
    options: RunOptions,
    pm: DeployBenchPluginManager | None = None,
    on_trial: Callable[[Case, dict], None] | None = None,
) -> CaseResult:
    """Run one case to its budget and write its JSONL file. Never raises for optimizer or task
    faults (they end the case as ``error``); ``KeyboardInterrupt`` propagates after the file is
    left resumable."""
    pm = pm or create_plugin_manager(options.plugin_args)
    started = time.perf_counter()
    path = case.path(options.out_dir)
    result = CaseResult(case=case, status="error", path=str(path))

    try:
        task, optimizer_cls = _build(case, pm)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001
        result.error = _error_record("task", exc)
        _write_error_only(path, case, result.error, options)
        return result

    direction = task.objective.direction
    kept: list[dict] = []
    problems: list[str] = []
    if options.resume and path.exists():
        try:
            previous = read_case_file(path)
        except ResultsFormatError:
            raise
        problems += previous.problems
        # a completed file that lost trial lines (corrupt line) is continued from its intact trials
        intact = previous.end is None or previous.end.get("n_trials") in (None, len(previous.trials))
        if previous.completed and intact and previous.header.get("task_signature") == task.signature() \
                and previous.header.get("budget") == case.budget \
                and previous.header.get("budget_seconds") == case.budget_seconds:
            summary = summarize_trials(previous.trials, direction)
            result = CaseResult(case=case, status="completed", path=str(path), skipped=True,
                                problems=problems, **{k: summary[k] for k in (
                                    "n_trials", "best", "best_config", "waste", "ttff", "cost_s", "glyphs",
                                    "duplicates", "env_errors")})
            task.close()
            return result
        if previous.header.get("task_signature") == task.signature() and not (previous.finished and intact):
            kept = previous.trials

    header = {
        "node_id": case.node_id,
        "task": case.task,
        "target": case.target,
        "task_label": case.task_label,
        "task_version": task.version,
        "task_signature": task.signature(),
        "task_kind": task.metadata.kind,
        "objective": {"metric": task.objective.metric, "direction": direction},
        "constraints": [c.to_json() for c in task.constraints],
        "known_optimum": task.metadata.known_optimum,
        "penalty": task.metadata.penalty,
        "family_param": task.metadata.family_param,
        "best_family": task.metadata.best_family,
        "optimizer": case.optimizer,
        "optimizer_params": {},
        "seed": case.seed,
        "budget": case.budget,
        "budget_seconds": case.budget_seconds,
        "started_at": _now(),
    }

    try:
        optimizer = optimizer_cls(
            task.space,
            objective=task.objective,
            constraints=task.constraints,
            budget=case.budget,
            seed=case.seed,
            family_param=task.metadata.family_param,
            **dict(case.optimizer_params),
        )
        header["optimizer_params"] = optimizer.get_params()
        header["optimizer_class"] = f"{optimizer_cls.__module__}.{optimizer_cls.__qualname__}"
    except Exception as exc:  # noqa: BLE001
        result.error = _error_record("optimizer constructor", exc)
        _write_error_only(path, case, result.error, options, header)
        task.close()
        return result

    # -- replay kept trials (resume) -----------------------------------------------------------------
    replayed: list[dict] = []
    if kept:
        try:
            for record in kept:
                suggestion = optimizer.ask()
                if task.space.key(suggestion) != task.space.key(record["config"]):
                    raise RuntimeError(f"replay diverged at trial {record['trial']}")
                optimizer.tell(dict(record["config"]), Outcome.from_dict(record["outcome"]))
                replayed.append(record)
        except Exception as exc:  # noqa: BLE001 - an optimizer that cannot replay starts over
            problems.append(f"resume: could not replay the recorded trials ({exc}); the case was restarted")
            replayed = []
            optimizer = optimizer_cls(task.space, objective=task.objective, constraints=task.constraints,
                                      budget=case.budget, seed=case.seed, family_param=task.metadata.family_param,
                                      **dict(case.optimizer_params))
    if replayed:
        header["resumed_from_trial"] = len(replayed)

    writer = CaseWriter(path, fsync=options.fsync)
    writer.start(header, replayed)
    trials: list[dict] = list(replayed)
    seen = {task.space.key(t["config"]) for t in trials}
    cum_cost = sum(t["outcome"]["cost_s"] for t in trials)
    feasible_found = any(t["outcome"]["status"] == "ok" for t in trials)
    best = summarize_trials(trials, direction)["best"]
    error: dict | None = None
    hook = pm.hook
    hook.deploybench_case_start(case=case)

    try:
        while len(trials) < case.budget and (case.budget_seconds is None or cum_cost < case.budget_seconds):
            i = len(trials)
            t0 = time.perf_counter()
            try:
                suggestion = _call_with_timeout(optimizer.ask, options.ask_timeout_s)
            except Exception as exc:  # noqa: BLE001
                error = _error_record("ask", exc)
                break
            t1 = time.perf_counter()
            try:
                task.space.validate(suggestion)
            except InvalidConfigError as exc:
                error = _error_record("validate", exc)
                error["suggestion"] = repr(suggestion)[:500]
                break
            config = dict(suggestion)
            key = task.space.key(config)
            duplicate = key in seen
            seen.add(key)
            context = EvalContext(seed=case.seed, trial=i, feasible_found=feasible_found)
            outcome, eval_wall = evaluate_safely(task, config, context)
            cum_cost += outcome.cost_s
            if outcome.status is Status.OK:
                feasible_found = True
                if outcome.objective is not None and (best is None or task.objective.better(outcome.objective, best)):
                    best = outcome.objective
            t2 = time.perf_counter()
            tell_error = None
            try:
                optimizer.tell(dict(config), outcome)
            except Exception as exc:  # noqa: BLE001
                tell_error = _error_record("tell", exc)
            t3 = time.perf_counter()
            record = {
                "type": "trial",
                "trial": i,
                "config": config,
                "outcome": outcome.to_dict(),
                "duplicate": duplicate,
                "best": best,
                "cum_cost_s": cum_cost,
                "ask_s": round(t1 - t0, 6),
                "eval_s": round(eval_wall, 6),
                "tell_s": round(t3 - t2, 6),
            }
            writer.write(record)
            trials.append(record)
            hook.deploybench_trial_end(case=case, record=record)
            if on_trial is not None:
                on_trial(case, record)
            if tell_error is not None:
                error = tell_error
                break
    except KeyboardInterrupt:
        writer.close()
        task.close()
        raise

    summary = summarize_trials(trials, direction)
    status = "error" if error else "completed"
    writer.write({"type": "end", "status": status, "error": error, "n_trials": len(trials),
                  "finished_at": _now()})
    writer.close()
    task.close()
    result = CaseResult(case=case, status=status, error=error, path=str(path), replayed=len(replayed),
                        wall_s=time.perf_counter() - started, problems=problems,
                        **{k: summary[k] for k in ("n_trials", "best", "best_config", "waste", "ttff", "cost_s",
                                                   "glyphs", "duplicates", "env_errors")})
    hook.deploybench_case_finish(case=case, result=result)
    return result


def _write_error_only(path: Path, case: Case, error: dict, options: RunOptions, header: dict | None = None) -> None:
    writer = CaseWriter(path, fsync=options.fsync)
    writer.start(header or {"node_id": case.node_id, "task": case.task, "target": case.target,
                            "task_label": case.task_label, "optimizer": case.optimizer, "seed": case.seed,
                            "budget": case.budget, "budget_seconds": case.budget_seconds, "started_at": _now()})
    writer.write({"type": "end", "status": "error", "error": error, "n_trials": 0, "finished_at": _now()})
    writer.close()
