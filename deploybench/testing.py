"""Conformance checks for optimizers and tasks, in the spirit of scikit-learn's ``check_estimator``.

Third-party authors call these from their own tests; each check becomes its own pytest item, and a
check that does not apply to the optimizer (say, seed sensitivity of one that declares
``tags.deterministic = False``) is reported as skipped, not passed::

    from deploybench.testing import parametrize_with_checks

    @parametrize_with_checks([MyOptimizer, (MyOptimizer, {"n_startup": 3})])
    def test_conformance(optimizer, check):
        check(optimizer)

or, in one test, ``check_optimizer(MyOptimizer)``. Each check raises ``AssertionError`` with a
message naming the check and what went wrong, or :class:`CheckNotApplicable` when it does not apply.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .fidelity import Fidelity, UnknownFidelityError, check_fidelities, split_suggestion
from .hookspecs import hookimpl
from .optimizer import Optimizer, OptimizerContext, build_optimizer
from .outcome import ErrorKind, Outcome, Status
from .space import Categorical, Condition, Float, Integer, InvalidConfigError, Ordinal, SearchSpace
from .task import Constraint, EvalContext, Objective, Task, TaskMetadata

__all__ = ["check_optimizer", "iter_optimizer_checks", "parametrize_with_checks", "CheckNotApplicable", "check_task",
           "check_task_fidelities", "toy_task", "toy_mf_task", "analytic_tasks", "ToyTask", "ToyMFTask"]


class CheckNotApplicable(Exception):
    """Raised by a check that does not apply to the optimizer under test; pytest reports it as skipped."""


class ToyTask(Task):
    """A small conditional space with a crash zone and a constraint, for conformance checks."""

    def __init__(self) -> None:
        space = SearchSpace([
            Categorical("family", choices=("a", "b", "c")),
            Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
            Float("x", low=0.0, high=1.0),
            Integer("n", low=1, high=64, log=True),
            Float("lr", low=1e-4, high=1.0, log=True, condition=Condition("family", ("a", "b"))),
        ])
        super().__init__(name="toy", version="1", space=space, objective=Objective("score", "maximize"),
                         constraints=(Constraint("load", 1.0),), default_budget=20,
                         metadata=TaskMetadata(kind="analytic", family_param="family", target="analytic"))

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        if config["family"] == "c" and config["batch"] >= 16:
            return Outcome.crashed(ErrorKind.OOM, "family c runs out of memory at batch >= 16", cost_s=0.5)
        score = -(config["x"] - 0.3) ** 2 + 0.1 * math.log2(config["batch"]) - 0.01 * math.log2(config["n"])
        load = config["x"] + config["batch"] / 32
        return self.judge({"score": score, "load": load}, cost_s=1.0 + config["batch"] / 32)


def toy_task() -> ToyTask:
    return ToyTask()


class ToyMFTask(ToyTask):
    """:class:`ToyTask` with a cheap, biased simulator level and a noisy probe below full, for the
    multi-fidelity conformance checks (budget: 30 s of charged cost)."""

    def __init__(self) -> None:
        super().__init__()
        self.name = "toy_mf"
        self.declare_fidelities([
            Fidelity("sim", "simulator", 0.01, cost_model="0.01 s", crashes="none"),
            Fidelity("probe", "probe", 0.3, cost_model="30 % of full", crashes="all (they happen at load)"),
            Fidelity("full", "full", 1.0),
        ], budget_seconds=30.0)

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        context = context or EvalContext()
        full = super().evaluate(config, context)
        if context.fidelity == "full":
            return full
        if context.fidelity == "sim":
            score = -(config["x"] - 0.5) ** 2 + 0.1 * math.log2(config["batch"])
            return self.judge({"score": score, "load": config["x"] + config["batch"] / 32}, 0.01).at_fidelity("sim", True)
        if full.failed:
            return Outcome.crashed(full.error.kind, full.error.message, cost_s=0.3 * full.cost_s).at_fidelity("probe")
        noise = 0.05 * math.sin(1000.0 * config["x"] + context.seed + context.trial)
        return self.judge({**full.metrics, "score": full.objective + noise}, 0.3 * full.cost_s).at_fidelity("probe")


def toy_mf_task() -> ToyMFTask:
    return ToyMFTask()


def analytic_tasks() -> list[Task]:
    """Every installed task of kind ``analytic`` (found through the plugin manager)."""
    from .plugins import create_plugin_manager

    pm = create_plugin_manager()
    tasks = []
    for spec in pm.task_specs().values():
        if spec.kind == "analytic":
            tasks.append(spec.build())
    return tasks


def _make(cls: type[Optimizer], task: Task, budget: int, seed: int, params: Mapping[str, Any]) -> Optimizer:
    return build_optimizer(cls, OptimizerContext.for_task(task, budget=budget, seed=seed), params)


def _drive(opt: Optimizer, task: Task, budget: int, seed: int,
           respond: Callable[[dict, int], Outcome] | None = None, levels: list[str] | None = None) -> list[dict]:
    """Ask/tell ``budget`` times; ``levels`` (if given) receives the fidelity of each suggestion."""
    configs = []
    for i in range(budget):
        config, fidelity = split_suggestion(opt.ask())
        try:
            task.fidelity(fidelity)
            task.space.validate(config)
        except (InvalidConfigError, UnknownFidelityError) as exc:
            raise AssertionError(f"{type(opt).__name__} suggested an invalid config at trial {i}: {exc}") from exc
        configs.append(dict(config))
        if levels is not None:
            levels.append(fidelity)
        if respond:
            outcome = respond(config, i)
            if fidelity != "full":
                outcome = outcome.at_fidelity(fidelity, task.fidelity(fidelity).predicts)
        else:
            outcome = task.evaluate_at(config, fidelity, EvalContext(seed=seed, trial=i))
        opt.tell(dict(config), outcome)
    return configs


def _check(fn: Callable) -> Callable:
    fn.is_check = True
    return fn


@_check
def check_same_seed_same_suggestions(cls, params, task, budget):
    a = _drive(_make(cls, task, budget, 3, params), task, budget, 3)
    b = _drive(_make(cls, task, budget, 3, params), task, budget, 3)
    assert [task.space.key(c) for c in a] == [task.space.key(c) for c in b], \
        f"{cls.__name__}: the same seed gave different suggestions on {task.name}"


@_check
def check_different_seeds_differ(cls, params, task, budget):
    if not getattr(cls, "tags", None) or not cls.tags.deterministic:
        raise CheckNotApplicable(f"{cls.__name__} declares tags.deterministic = False, so its suggestions need not "
                                 "be a function of the seed")
    a = _drive(_make(cls, task, budget, 1, params), task, budget, 1)
    b = _drive(_make(cls, task, budget, 2, params), task, budget, 2)
    assert [task.space.key(c) for c in a] != [task.space.key(c) for c in b], \
        f"{cls.__name__}: seeds 1 and 2 gave identical suggestion sequences on {task.name}"


@_check
def check_suggestions_valid_within_budget(cls, params, task, budget):
    opt = _make(cls, task, budget, 0, params)
    configs = _drive(opt, task, budget, 0)
    assert len(configs) == budget
    keys = [task.space.key(c) for c in configs]
    dup = len(keys) - len(set(keys))
    assert dup <= budget // 4, f"{cls.__name__}: {dup} duplicate suggestions in {budget} trials on {task.name}"


def _respond_all(status: str):
    def respond(config: dict, i: int) -> Outcome:
        if status == "crashed":
            return Outcome.crashed(ErrorKind.RUNTIME, "always crashes", cost_s=1.0)
        if status == "timeout":
            return Outcome.timed_out("always times out", cost_s=5.0)
        if status == "infeasible":
            return Outcome(Status.INFEASIBLE, objective=float(-i), violation={"load": 1.0 + i}, cost_s=1.0)
        if status == "early_stopped":
            return Outcome(Status.INFEASIBLE, objective=None, violation={"load": 4.0}, cost_s=0.5, early_stopped=True)
        if status == "ties":
            return Outcome(Status.OK, objective=1.0, violation={"load": 0.0}, cost_s=1.0)
        raise ValueError(status)

    return respond


@_check
def check_survives_all_crashes(cls, params, task, budget):
    _drive(_make(cls, task, budget, 0, params), task, budget, 0, _respond_all("crashed"))


@_check
def check_survives_all_timeouts(cls, params, task, budget):
    _drive(_make(cls, task, budget, 0, params), task, budget, 0, _respond_all("timeout"))


@_check
def check_survives_all_infeasible(cls, params, task, budget):
    _drive(_make(cls, task, budget, 0, params), task, budget, 0, _respond_all("infeasible"))


@_check
def check_survives_early_stops(cls, params, task, budget):
    _drive(_make(cls, task, budget, 0, params), task, budget, 0, _respond_all("early_stopped"))


@_check
def check_survives_ties(cls, params, task, budget):
    _drive(_make(cls, task, budget, 0, params), task, budget, 0, _respond_all("ties"))


@_check
def check_params_recorded(cls, params, task, budget):
    opt = _make(cls, task, budget, 0, params)
    got = opt.get_params()
    assert isinstance(got, dict), f"{cls.__name__}.get_params() must return a dict"
    json.dumps(got, default=str)
    for k, v in params.items():
        assert got.get(k) == v, f"{cls.__name__}: parameter {k!r} passed {v!r} but get_params() says {got.get(k)!r}"
    sig = inspect.signature(cls.__init__)
    for name, p in sig.parameters.items():
        if name in got and p.default is not inspect.Parameter.empty and name not in params:
            assert got[name] == p.default, \
                f"{cls.__name__}: the constructor must store {name!r} unchanged (default {p.default!r}, stored {got[name]!r})"
    clone = _make(cls, task, budget, 0, got)
    assert clone.get_params() == got, f"{cls.__name__}: rebuilding from get_params() changed the parameters"


@_check
def check_works_on_builtin_tasks(cls, params, task, budget):
    tasks = analytic_tasks()
    if not tasks:
        raise CheckNotApplicable("no analytic task is installed")
    for t in tasks:
        _drive(_make(cls, t, min(budget, 12), 0, params), t, min(budget, 12), 0)


@_check
def check_fidelity_requests(cls, params, task, budget):
    """A multi-fidelity optimizer asks only for levels the task offers, reaches full fidelity within
    the budget, stays deterministic with levels, survives every level crashing, and recommends a
    valid configuration (if it recommends at all)."""
    if not getattr(getattr(cls, "tags", None), "multi_fidelity", False):
        raise CheckNotApplicable(f"{cls.__name__} does not declare tags.multi_fidelity")
    mf = toy_mf_task()
    n = max(budget, 20)
    levels: list[str] = []
    opt = _make(cls, mf, n, 0, params)
    configs = _drive(opt, mf, n, 0, levels=levels)
    assert "full" in levels, f"{cls.__name__}: {n} suggestions on a multi-fidelity task, none at full fidelity ({levels})"
    again: list[str] = []
    configs2 = _drive(_make(cls, mf, n, 0, params), mf, n, 0, levels=again)
    assert [mf.space.key(c) for c in configs] == [mf.space.key(c) for c in configs2] and levels == again, \
        f"{cls.__name__}: the same seed gave different (config, fidelity) suggestions on a multi-fidelity task"
    recommend = getattr(opt, "recommend", None)
    if recommend is not None:
        rec = recommend()
        if rec is not None:
            rec, _ = split_suggestion(rec)
            mf.space.validate(rec)
    _drive(_make(cls, mf, n, 0, params), mf, n, 0, _respond_all("crashed"))


class _UnderTest:
    """A plugin registering only the optimizer under test, for a plugin manager without entry points."""

    def __init__(self, cls: type[Optimizer]) -> None:
        self.cls = cls

    @hookimpl
    def deploybench_register_optimizers(self) -> list[type[Optimizer]]:
        return [self.cls]


@_check
def check_resumes_through_the_runner(cls, params, task, budget):
    """Through the real runner (``deploybench.runner.run_case``, files in a temporary folder): a case
    stopped after half its trials and run again with ``--resume`` replays the recorded trials into a
    fresh optimizer (which must ask for the same configurations again), then completes the budget; a
    deterministic optimizer ends exactly as an uninterrupted run."""
    import tempfile
    from pathlib import Path

    from .plugins import create_plugin_manager
    from .results import read_case_file
    from .runner import Case, RunOptions, run_case

    pm = create_plugin_manager(load_entry_points=False)
    pm.pm.register(_UnderTest(cls), name=f"under-test-{cls.name}")
    n = max(budget, 6)
    case = Case(task=task.name, target=task.metadata.target or "analytic", task_label=task.name, optimizer=cls.name,
                seed=0, budget=n, optimizer_params=tuple(sorted(params.items())), kind="analytic")
    with tempfile.TemporaryDirectory(prefix="deploybench-check-") as tmp:
        whole = run_case(case, RunOptions(out_dir=str(Path(tmp) / "whole")), pm, task=task)
        assert whole.status == "completed", f"{cls.__name__}: the runner ended the case with {whole.error}"
        reference = read_case_file(whole.path)
        kept = n // 2
        stopped = Path(tmp) / "stopped" / Path(whole.path).relative_to(Path(tmp) / "whole")
        stopped.parent.mkdir(parents=True)
        lines = Path(whole.path).read_text(encoding="utf-8").splitlines(keepends=True)
        stopped.write_text("".join(lines[:1 + kept]), encoding="utf-8")  # the header and `kept` trials, no end
        resumed = run_case(case, RunOptions(out_dir=str(Path(tmp) / "stopped"), resume=True), pm, task=task)
        assert resumed.replayed == kept, (
            f"{cls.__name__}: --resume could not replay the {kept} recorded trials into a fresh optimizer "
            f"({'; '.join(resumed.problems) or resumed.error}); an optimizer must ask for the same configurations "
            "again when told the same outcomes from the same seed")
        assert resumed.status == "completed", f"{cls.__name__}: the resumed case ended with {resumed.error}"
        after = read_case_file(resumed.path)
    assert len(after.trials) == n, f"{cls.__name__}: the resumed case has {len(after.trials)} of {n} trials"
    assert [t["config"] for t in after.trials[:kept]] == [t["config"] for t in reference.trials[:kept]]
    if getattr(getattr(cls, "tags", None), "deterministic", False):
        assert [task.space.key(t["config"]) for t in after.trials] == \
            [task.space.key(t["config"]) for t in reference.trials], \
            f"{cls.__name__}: a resumed run diverged from the uninterrupted one after the replayed trials"


_CHECKS = [check_same_seed_same_suggestions, check_different_seeds_differ, check_suggestions_valid_within_budget,
           check_survives_all_crashes, check_survives_all_timeouts, check_survives_all_infeasible,
           check_survives_early_stops, check_survives_ties, check_params_recorded, check_works_on_builtin_tasks,
           check_resumes_through_the_runner]


def _checks_for(cls: type) -> list[Callable]:
    """The checks that concern ``cls``: the fidelity check only for optimizers that declare
    ``tags.multi_fidelity`` (so the checks of every other optimizer are what they always were)."""
    if getattr(getattr(cls, "tags", None), "multi_fidelity", False):
        return [*_CHECKS, check_fidelity_requests]
    return list(_CHECKS)


def iter_optimizer_checks(cls: type[Optimizer], params: Mapping[str, Any] | None = None, *, budget: int = 15,
                          task: Task | None = None) -> Iterator[Callable[[], None]]:
    """Yield each check bound to ``cls`` (for ``pytest.mark.parametrize``); call it to run it."""
    params = dict(params or {})
    task = task or toy_task()
    for check in _checks_for(cls):
        bound = functools.partial(check, cls, params, task, budget)
        functools.update_wrapper(bound, check)
        yield bound


def _expected_failures(expected: Mapping[str, str] | None) -> dict[str, str]:
    expected = dict(expected or {})
    known = {c.__name__ for c in [*_CHECKS, check_fidelity_requests]}
    unknown = sorted(set(expected) - known)
    if unknown:
        raise ValueError(f"expected_failed_checks names unknown checks {unknown}; the checks are {sorted(known)}")
    return expected


def check_optimizer(cls: type[Optimizer], params: Mapping[str, Any] | None = None, *, budget: int = 15,
                    task: Task | None = None, expected_failed_checks: Mapping[str, str] | None = None,
                    **kwargs: Any) -> list[str]:
    """Run every optimizer check; raise ``AssertionError`` on the first failure. Returns the checks that
    did not apply or were expected to fail, each with the reason.

    Constructor parameters go in ``params`` or as keywords (``check_optimizer(MyOpt, n_startup=3)``);
    ``budget`` and ``task`` configure the checks themselves. ``expected_failed_checks`` maps a check's
    name to the reason it is known to fail (scikit-learn's escape hatch): it still runs, and a check
    that passes although it was expected to fail is an error, so the list does not go stale.
    """
    assert issubclass(cls, Optimizer), f"{cls!r} is not a deploybench.Optimizer subclass"
    assert getattr(cls, "name", ""), f"{cls.__name__} needs a class attribute `name`"
    params = {**dict(params or {}), **kwargs}
    expected = _expected_failures(expected_failed_checks)
    not_applicable = []
    for check in iter_optimizer_checks(cls, params, budget=budget, task=task):
        try:
            check()
        except CheckNotApplicable as exc:
            not_applicable.append(f"{check.__name__}: {exc}")
            continue
        except AssertionError:
            if check.__name__ in expected:
                not_applicable.append(f"{check.__name__}: expected to fail ({expected[check.__name__]})")
                continue
            raise
        if check.__name__ in expected:
            raise AssertionError(f"{check.__name__} passed but is listed in expected_failed_checks "
                                 f"({expected[check.__name__]}): remove it from the list")
    return not_applicable


def _case_id(cls: type, params: Mapping[str, Any]) -> str:
    name = getattr(cls, "name", "") or cls.__name__
    return name + (f"[{','.join(f'{k}={v}' for k, v in sorted(params.items()))}]" if params else "")


def parametrize_with_checks(optimizers: Sequence[Any], *, budget: int = 15, task: Task | None = None,
                            expected_failed_checks: Callable[[type], Mapping[str, str]] | None = None) -> Any:
    """A ``pytest.mark.parametrize`` decorator giving each (optimizer, check) pair its own test item,
    like scikit-learn's ``parametrize_with_checks``. ``optimizers``: classes, or ``(class, params)``
    pairs. The test receives ``optimizer`` (the class) and ``check``, and calls ``check(optimizer)``;
    a check that does not apply calls ``pytest.skip`` with the reason. ``expected_failed_checks(cls)``
    returns ``{check name: reason}`` for checks known to fail: they are marked ``xfail(strict=True)``,
    so one that starts passing fails the run until it is taken off the list."""
    import pytest

    items = []
    for entry in optimizers:
        cls, params = (entry, {}) if isinstance(entry, type) else (entry[0], dict(entry[1]))
        expected = _expected_failures(expected_failed_checks(cls) if expected_failed_checks else None)
        for check in _checks_for(cls):
            marks = ([pytest.mark.xfail(reason=expected[check.__name__], strict=True, raises=AssertionError)]
                     if check.__name__ in expected else [])
            items.append(pytest.param(cls, _pytest_check(check, params, budget, task), marks=marks,
                                      id=f"{_case_id(cls, params)}-{check.__name__}"))
    return pytest.mark.parametrize("optimizer, check", items)


def _pytest_check(check: Callable, params: Mapping[str, Any], budget: int, task: Task | None) -> Callable:
    def run(optimizer: type[Optimizer]) -> None:
        import pytest

        try:
            check(optimizer, dict(params), task or toy_task(), budget)
        except CheckNotApplicable as exc:
            pytest.skip(f"{check.__name__} does not apply: {exc}")

    functools.update_wrapper(run, check)
    return run


def check_task(task: Task, *, n: int = 50, seed: int = 0, witness: Mapping[str, Any] | None = None) -> None:
    """Check a task: outcomes are Outcomes, JSON round trip, costs charged, determinism per (seed, trial),
    and (with a ``witness`` config) that the known optimum is reached."""
    from .results import dumps, loads

    rng = np.random.default_rng(seed)
    assert task.objective.metric, "the task needs an objective metric"
    task.signature()
    for i in range(n):
        config = task.space.sample(rng)
        task.space.validate(config)
        ctx = EvalContext(seed=seed, trial=i)
        outcome = task.evaluate(config, ctx)
        assert isinstance(outcome, Outcome), f"{task.name}.evaluate returned {type(outcome).__name__}"
        assert outcome.cost_s > 0, f"{task.name}: cost_s must be charged (got {outcome.cost_s}) for {config}"
        assert Outcome.from_dict(loads(dumps(outcome.to_dict()))) == outcome, f"{task.name}: JSON round trip changed the outcome"
        assert task.evaluate(config, ctx) == outcome, f"{task.name}: not deterministic for a fixed (seed, trial)"
    if task.multi_fidelity:
        check_task_fidelities(task, n=n, seed=seed)
    if witness is not None and task.metadata.known_optimum is not None:
        o = task.evaluate(witness, EvalContext(seed=seed))
        tolerance = 1e-6 + 4 * float(o.metrics.get("noise_sd") or 0.0)  # noisy tasks: within 4 noise SDs
        assert o.feasible and abs(o.objective - task.metadata.known_optimum) <= tolerance, \
            f"{task.name}: the witness reaches {o.objective}, not the known optimum {task.metadata.known_optimum}"


def check_task_fidelities(task: Task, *, n: int = 50, seed: int = 0) -> None:
    """Check a task's fidelity levels on ``n`` sampled configurations:

    - the levels are well formed (unique names, cheapest first, ``full`` last) and an unknown level
      name is refused with a ``ValueError``;
    - ``evaluate_at(c, "full")`` equals ``evaluate(c)``;
    - every outcome names the level that produced it, is ``predicted`` exactly at simulator levels,
      is charged a positive cost and survives a JSON round trip;
    - the charged cost never falls as the level rises (for the same configuration and context);
    - simulator levels are deterministic (the same outcome whatever the seed and trial);
    - a measured crash at a lower level (a probe's) is a crash at full too (same context).
    """
    from .results import dumps, loads

    levels = check_fidelities(task.fidelities)
    try:
        task.fidelity("no-such-level")
    except ValueError:
        pass
    else:
        raise AssertionError(f"{task.name}: an unknown fidelity name was accepted")
    rng = np.random.default_rng(seed)
    for i in range(n):
        config = task.space.sample(rng)
        ctx = EvalContext(seed=seed, trial=i)
        full = task.evaluate_at(config, "full", ctx)
        assert full == task.evaluate(config, ctx), f"{task.name}: evaluate_at(c, 'full') differs from evaluate(c)"
        outcomes = [task.evaluate_at(config, f.name, ctx) for f in levels]
        for level, o in zip(levels, outcomes):
            assert o.fidelity == level.name and o.predicted == level.predicts, \
                f"{task.name}: level {level.name!r} returned an outcome labelled {o.fidelity!r} (predicted={o.predicted})"
            assert o.cost_s > 0, f"{task.name}: level {level.name!r} charged nothing for {config}"
            assert Outcome.from_dict(loads(dumps(o.to_dict()))) == o, f"{task.name}: JSON round trip changed a {level.name} outcome"
            if level.predicts:
                other = task.evaluate_at(config, level.name, EvalContext(seed=seed + 1, trial=i + 7))
                assert other == o, f"{task.name}: simulator level {level.name!r} is not deterministic for {config}"
            elif o.failed and level.kind == "probe":
                assert full.failed, f"{task.name}: level {level.name!r} crashed on {config} but full did not"
        costs = [o.cost_s for o in outcomes]
        assert all(a <= b + 1e-9 for a, b in zip(costs, costs[1:])), \
            f"{task.name}: costs {dict(zip([f.name for f in levels], costs))} fall as the level rises for {config}"
