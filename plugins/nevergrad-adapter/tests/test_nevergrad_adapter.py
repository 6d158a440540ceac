"""deploybench-nevergrad: parametrization, the loss rule, and the optimizer on crash-prone spaces."""

from __future__ import annotations

import math

import nevergrad as ng
import numpy as np
import pytest

from deploybench import (Categorical, Condition, Constraint, EvalContext, Float, Integer, Objective,
                         OptimizerContext, Ordinal, Outcome, SearchSpace, Status)
from deploybench.tasks.synthetic import CrashyBranin, HierarchicalRosenbrock
from deploybench_nevergrad import NevergradOptimizer
from deploybench_nevergrad.losses import CRASH_LOSS_BEFORE_ANY_RUN, LossBook, positive
from deploybench_nevergrad.parametrization import to_config, to_parametrization


def mixed_space() -> SearchSpace:
    return SearchSpace([
        Categorical("backend", choices=("eager", "compile", "onnx")),
        Ordinal("batch", values=(1, 2, 4, 8, 16, 32), log=True),
        Integer("threads", low=1, high=8, condition=Condition("backend", ("eager", "onnx"))),
        Integer("width", low=1, high=256, log=True),
        Float("lr", low=1e-4, high=1e-1, log=True, condition=Condition("backend", ("compile",))),
    ])


def run(opt, task, n, seed=0):
    keys = []
    for i in range(n):
        config = opt.ask()
        task.space.validate(config)
        opt.tell(config, task.evaluate(config, EvalContext(seed=seed, trial=i)))
        keys.append(task.space.key(config))
    return keys


# -- parametrization -----------------------------------------------------------------------------------------
def test_every_kind_becomes_its_nevergrad_counterpart():
    parametrization = to_parametrization(mixed_space(), seed=0)
    assert isinstance(parametrization["backend"], ng.p.Choice)
    assert isinstance(parametrization["batch"], ng.p.TransitionChoice)
    assert isinstance(parametrization["width"], ng.p.Log)
    assert isinstance(parametrization["lr"], ng.p.Log)
    assert isinstance(parametrization["threads"], ng.p.Scalar) and not isinstance(parametrization["threads"], ng.p.Log)


def test_candidates_become_valid_configs_with_inactive_parameters_dropped():
    space = mixed_space()
    parametrization = to_parametrization(space, seed=0)
    seen_backends = set()
    for _ in range(60):
        value = parametrization.sample().value
        assert set(value) == set(space.names)  # nevergrad samples every parameter
        config = to_config(space, value)
        space.validate(config)
        seen_backends.add(config["backend"])
        assert ("lr" in config) == (config["backend"] == "compile")
        assert type(config["width"]) is int and type(config["batch"]) is int
    assert seen_backends == {"eager", "compile", "onnx"}


# -- loss rule ---------------------------------------------------------------------------------------------------
def test_positive_map_is_increasing_positive_and_stable():
    xs = [-1e12, -1e3, -1.0, -1e-3, 0.0, 1e-3, 1.0, 1e3, 1e12]
    ys = [positive(x) for x in xs]
    assert all(y > 0 for y in ys) and ys == sorted(ys) and len(set(ys)) == len(ys)
    assert positive(0.0) == 1.0


def test_infeasible_gets_per_constraint_violations_and_crash_the_worst_plus_margin():
    book = LossBook(sign=+1.0)  # maximised objective: cost = -objective
    assert book.score(Outcome.crashed("runtime", "x")) == (CRASH_LOSS_BEFORE_ANY_RUN, None)
    assert book.score(Outcome(Status.OK, objective=0.9)) == (positive(-0.9), None)
    loss, violation = book.score(Outcome(Status.INFEASIBLE, objective=0.95, violation={"lat": 0.5, "mem": 0.0}))
    assert loss == positive(-0.95) and violation == [0.5]
    loss, violation = book.score(Outcome(Status.INFEASIBLE, objective=None, early_stopped=True))
    assert loss == positive(-0.9) and violation == [1.0]  # early stop without violation counts 1
    loss, violation = book.score(Outcome.timed_out("slow", 3.0))
    assert violation is None and loss == pytest.approx(positive(-0.9 + 0.05))  # worst cost + spread


def test_penalty_mode_puts_infeasible_above_every_feasible():
    book = LossBook(sign=-1.0, penalty=True)  # minimised objective: cost = objective
    book.score(Outcome(Status.OK, objective=2.0))
    book.score(Outcome(Status.OK, objective=4.0))
    loss, violation = book.score(Outcome(Status.INFEASIBLE, objective=1.0, violation={"lat": 0.25}))
    assert violation is None and loss == pytest.approx(positive(4.0 + 3.0 * 0.25))


def test_nevergrad_penalty_vanishes_for_a_negative_loss_but_not_after_the_map():
    """Why losses go through g: nevergrad's default penalty multiplies max(loss, 0) early in the run."""
    def told_loss(loss: float) -> float:
        opt = ng.optimizers.registry["RandomSearch"](parametrization=ng.p.Scalar(lower=0, upper=1), budget=100)
        seen = []
        inner = opt._internal_tell_candidate
        opt._internal_tell_candidate = lambda cand, value: (seen.append(value), inner(cand, value))
        opt.tell(opt.ask(), loss, constraint_violation=[1.0])
        return seen[0]

    assert told_loss(-0.9) == -0.9                      # infeasible, yet told unpenalised
    assert told_loss(positive(-0.9)) > positive(-0.9)    # penalised once the loss is positive


# -- optimizer -------------------------------------------------------------------------------------------------------
def test_suggestions_are_valid_on_a_conditional_space_and_reproducible():
    task = HierarchicalRosenbrock()
    context = OptimizerContext(task.space, task.objective, constraints=task.constraints, budget=20, seed=5)
    first = run(NevergradOptimizer(context), task, 20, seed=5)
    second = run(NevergradOptimizer(context), task, 20, seed=5)
    assert first == second
    third = run(NevergradOptimizer(OptimizerContext.for_task(task, budget=20, seed=6)), task, 20, seed=6)
    assert third != first


@pytest.mark.parametrize("algorithm", ["TwoPointsDE", "DiscreteOnePlusOne", "RandomSearch"])
@pytest.mark.parametrize("handling", ["violation", "penalty"])
def test_other_algorithms_and_constraint_handling(algorithm, handling):
    task = CrashyBranin()
    opt = NevergradOptimizer(OptimizerContext(task.space, objective=task.objective,
                                              constraints=task.constraints, budget=12, seed=0),
                             algorithm=algorithm, constraint_handling=handling)
    run(opt, task, 12)
    assert opt.get_params()["algorithm"] == algorithm and opt.get_params()["constraint_handling"] == handling


def test_unknown_algorithm_names_the_closest():
    task = CrashyBranin()
    with pytest.raises(ValueError, match="did you mean 'NGOpt'"):
        NevergradOptimizer(OptimizerContext(task.space, objective=task.objective), algorithm="NGOtp")
    with pytest.raises(ValueError, match="constraint_handling"):
        NevergradOptimizer(OptimizerContext(task.space, objective=task.objective), constraint_handling="ignore")


def test_a_config_nevergrad_did_not_propose_can_be_told():
    space = mixed_space()
    opt = NevergradOptimizer(OptimizerContext(space, Objective("acc"), constraints=(Constraint("lat", 20.0),),
                                              budget=10))
    config = space.sample(np.random.default_rng(1))
    opt.tell(config, Outcome(Status.OK, objective=0.7))
    space.validate(opt.ask())


def test_passes_the_deploybench_conformance_suite():
    testing = pytest.importorskip("deploybench.testing", reason="deploybench.testing is not in this deploybench")
    testing.check_optimizer(NevergradOptimizer)
