"""Synthetic crash-prone tasks with known optima and modelled evaluation costs.

Each task is cheap to evaluate but behaves like a deployment space: a categorical "family",
hidden crash zones, hard constraints and costs that differ between configurations (so a budget
in seconds means something). ``cost_s`` is modelled, not measured.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..outcome import ErrorKind, Outcome
from ..space import Categorical, Condition, Float, Integer, SearchSpace
from ..task import Constraint, EvalContext, Objective, Task, TaskMetadata

__all__ = ["branin", "CrashyBranin", "HierarchicalRosenbrock", "CrashCliff"]


def branin(x1: float, x2: float) -> float:
    """The standard Branin function; global minimum 0.397887."""
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5.0 / math.pi
    r, s, t = 6.0, 10.0, 1.0 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


class CrashyBranin(Task):
    r"""Crashy Branin: Branin with a categorical mode, crash zones and two linear constraints.

    As defined by the code published with the TBA paper (Lysenstøen 2026, "Feasible-First Exploration
    for Constrained ML Deployment Optimization in Crash-Prone Hierarchical Search Spaces",
    github.com/Chrislysen/Constrained-ML-Deployment), exactly.

    Space: ``mode`` ∈ {A, B, C}, ``x1``, ``x2`` ∈ [0, 15], ``resolution`` ∈ {1..10}.

    - crash when ``mode == C and x1 > 8`` or ``resolution > 7 and x2 > 12``;
    - objective (maximised): :math:`-(\mathrm{branin}(x_1 + s_{mode}, x_2) + 0.1\,resolution)`,
      shift A = 0, B = +2, C = −2;
    - constraints: :math:`g_1 = x_1 + x_2 - 16 \le 0`, :math:`g_2 = -x_1 + 2x_2 - 10 \le 0`
      (unitless violations with scale 1);
    - known optimum −(0.397887 + 0.1) = −0.497887 (resolution 1, e.g. mode A at (π, 2.275));
    - uniform sampling gives about 21 % crashes and 45 % infeasible results.

    Cost model (an addition; the reference charged nothing): a run costs ``1 + 0.4·resolution``
    seconds; a crash happens part-way and costs 35 % of that.
    """

    SHIFTS = {"A": 0.0, "B": 2.0, "C": -2.0}
    OPTIMUM = -(0.397887357729738 + 0.1)
    #: the worst feasible objective (the leaderboard's penalty for a seed that found nothing): mode B
    #: at the feasible corner (x1, x2) = (15, 0) with resolution 10, about -273.3 (found by a dense grid
    #: over the feasible region; tests check no sampled feasible configuration is worse)
    WORST_FEASIBLE = -(branin(15.0 + 2.0, 0.0) + 0.1 * 10)

    def __init__(self) -> None:
        space = SearchSpace(
            [
                Categorical("mode", choices=("A", "B", "C")),
                Float("x1", low=0.0, high=15.0),
                Float("x2", low=0.0, high=15.0),
                Integer("resolution", low=1, high=10),
            ]
        )
        super().__init__(
            name="crashy_branin",
            version="1",
            space=space,
            objective=Objective("neg_branin", "maximize"),
            constraints=(Constraint("g1", 0.0, scale=1.0), Constraint("g2", 0.0, scale=1.0)),
            default_budget=30,
            metadata=TaskMetadata(
                kind="analytic",
                known_optimum=self.OPTIMUM,
                penalty=self.WORST_FEASIBLE,
                family_param="mode",
                best_family=None,  # modes A, B and C all reach the optimum
                target="analytic",
                description="Branin with a categorical mode, an integer resolution, crash zones and two linear constraints",
                reference="Lysenstøen 2026, Feasible-First Exploration for Constrained ML Deployment Optimization in "
                          "Crash-Prone Hierarchical Search Spaces: synthetic benchmark, Table 3",
            ),
        )

    @staticmethod
    def run_cost(resolution: int) -> float:
        return 1.0 + 0.4 * resolution

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        mode, x1, x2, res = config["mode"], float(config["x1"]), float(config["x2"]), int(config["resolution"])
        cost = self.run_cost(res)
        if mode == "C" and x1 > 8:
            return Outcome.crashed(ErrorKind.RUNTIME, "mode C diverges for x1 > 8", cost_s=0.35 * cost)
        if res > 7 and x2 > 12:
            return Outcome.crashed(ErrorKind.OOM, "resolution > 7 with x2 > 12 runs out of memory", cost_s=0.35 * cost)
        value = -(branin(x1 + self.SHIFTS[mode], x2) + 0.1 * res)
        metrics = {"neg_branin": value, "g1": x1 + x2 - 16.0, "g2": -x1 + 2.0 * x2 - 10.0}
        return self.judge(metrics, cost)


class HierarchicalRosenbrock(Task):
    r"""Hierarchical Rosenbrock: the dimension depends on a categorical mode; crash zone, noise.

    From the code published with the TBA paper (github.com/Chrislysen/Constrained-ML-Deployment),
    with real (seeded Gaussian) noise in place of its hash-based pseudo-noise.

    Space: ``mode`` ∈ {simple, extended, full}; ``x1``, ``x2`` ∈ [−5, 5]; ``x3``, ``x4`` ∈ [−5, 5]
    active when mode ∈ {extended, full}; ``x5`` ∈ [−5, 5] active when mode = full;
    ``n_iters`` ∈ {1..20}. With xs the active x's in order:

    - crash when ``mode == full and x1 > 3 and x5 > 3``;
    - objective (maximised): :math:`-\sum_i [100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2] + \varepsilon`;
    - constraint ``var_sum = Σ xs − 5 ≤ 0`` (scale 1);
    - known (noise-free) optimum 0 at xs = (1, …, 1), feasible in every mode.

    **Change from the reference:** the reference added a deterministic penalty from Python's hash
    of the x tuple (a discontinuous pseudo-noise). Here ε is Gaussian noise,
    ε ~ N(0, (0.5 / n_iters)²), drawn from a generator seeded by the case seed and trial index,
    so more iterations give a more precise (and, by the cost model, more expensive) measurement.

    Cost model: ``0.1 + 0.05 · n_iters · len(xs)`` seconds; a crash costs half of that.
    """

    NOISE_AT_ONE_ITER = 0.5
    #: the leaderboard's penalty for a seed that found nothing: the worst noise-free feasible objective
    #: (every active x at -5 in full mode maximises each Rosenbrock term: 4 × 90036 = 360144; feasible,
    #: no crash), lowered by ten standard deviations of the largest noise so no measurement falls below it
    WORST_FEASIBLE = -(4 * (100.0 * (-5.0 - 25.0) ** 2 + 36.0) + 10 * NOISE_AT_ONE_ITER)

    def __init__(self) -> None:
        ext = Condition("mode", ("extended", "full"))
        full = Condition("mode", ("full",))
        space = SearchSpace(
            [
                Categorical("mode", choices=("simple", "extended", "full")),
                Float("x1", low=-5.0, high=5.0),
                Float("x2", low=-5.0, high=5.0),
                Float("x3", low=-5.0, high=5.0, condition=ext),
                Float("x4", low=-5.0, high=5.0, condition=ext),
                Float("x5", low=-5.0, high=5.0, condition=full),
                Integer("n_iters", low=1, high=20),
            ]
        )
        super().__init__(
            name="hierarchical_rosenbrock",
            version="1",
            space=space,
            objective=Objective("neg_rosenbrock", "maximize"),
            constraints=(Constraint("var_sum", 0.0, scale=1.0),),
            default_budget=30,
            metadata=TaskMetadata(
                kind="analytic",
                known_optimum=0.0,
                penalty=self.WORST_FEASIBLE,
                family_param="mode",
                target="analytic",
                description="Rosenbrock whose dimension depends on a categorical mode, with a crash zone, a sum constraint and noise falling with n_iters",
                reference="Lysenstøen 2026, Feasible-First Exploration for Constrained ML Deployment Optimization in "
                          "Crash-Prone Hierarchical Search Spaces: synthetic benchmark (hash pseudo-noise replaced by "
                          "seeded Gaussian noise)",
            ),
        )

    @staticmethod
    def xs(config: Mapping[str, Any]) -> list[float]:
        return [float(config[n]) for n in ("x1", "x2", "x3", "x4", "x5") if n in config]

    @staticmethod
    def rosenbrock(xs: list[float]) -> float:
        return sum(100.0 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1.0 - xs[i]) ** 2 for i in range(len(xs) - 1))

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        context = context or EvalContext()
        xs = self.xs(config)
        n_iters = int(config["n_iters"])
        cost = 0.1 + 0.05 * n_iters * len(xs)
        if config["mode"] == "full" and config["x1"] > 3 and config["x5"] > 3:
            return Outcome.crashed(ErrorKind.RUNTIME, "full mode diverges for x1 > 3 and x5 > 3", cost_s=0.5 * cost)
        rng = np.random.default_rng([int(context.seed), int(context.trial), 0x5EED])
        noise = float(rng.normal(0.0, self.NOISE_AT_ONE_ITER / n_iters))
        value = -self.rosenbrock(xs) + noise
        metrics = {"neg_rosenbrock": value, "var_sum": sum(xs) - 5.0, "noise_sd": self.NOISE_AT_ONE_ITER / n_iters}
        return self.judge(metrics, cost)


class CrashCliff(Task):
    r"""A trap for greedy optimizers: the objective climbs straight into a crash cliff.

    Space: ``accelerator`` ∈ {none, simd, gpu}; ``x`` ∈ [0, 1] (aggressiveness, e.g. a clock or
    a fusion level), ``y`` ∈ [0, 1] (a balance knob), ``unroll`` ∈ {1..8}.

    - objective (maximised): :math:`f = g_a + 4x - 6 (y - 0.5)^2 - 0.05 (u - 4)^2`,
      with g = {none: 0, simd: 0.5, gpu: 1.0};
    - crash when :math:`x > c_a - 0.02 (u - 1)`, with c = {none: 0.95, simd: 0.85, gpu: 0.70}:
      the objective rises with x right up to the edge, so the optimum lies *on* the crash boundary
      and the accelerator with the largest gain (gpu) has the closest cliff;
    - constraint ``power = x + y ≤ 1.4`` (not binding at the optimum);
    - known optimum 3.69 at accelerator simd, unroll 3, y = 0.5, x = 0.81 (the cliff edge);
      the best none and gpu configurations reach 3.59.

    Cost model: ``0.5 + 0.25·unroll`` seconds, plus 1 s of compilation for gpu; a crash costs 30 %.
    """

    GAIN = {"none": 0.0, "simd": 0.5, "gpu": 1.0}
    CLIFF = {"none": 0.95, "simd": 0.85, "gpu": 0.70}
    OPTIMUM = 0.5 + 4 * (0.85 - 0.02 * 2) - 0.05  # simd at its cliff edge with unroll 3
    #: the worst feasible objective (the leaderboard's penalty for a seed that found nothing):
    #: accelerator none, x = 0, y at 0 or 1, unroll 8: -6 · 0.25 - 0.05 · 16 = -2.3
    WORST_FEASIBLE = 0.0 + 4 * 0.0 - 6.0 * 0.25 - 0.05 * (8 - 4) ** 2

    def __init__(self) -> None:
        space = SearchSpace(
            [
                Categorical("accelerator", choices=("none", "simd", "gpu")),
                Float("x", low=0.0, high=1.0),
                Float("y", low=0.0, high=1.0),
                Integer("unroll", low=1, high=8),
            ]
        )
        super().__init__(
            name="crash_cliff",
            version="1",
            space=space,
            objective=Objective("score", "maximize"),
            constraints=(Constraint("power", 1.4),),
            default_budget=30,
            metadata=TaskMetadata(
                kind="analytic",
                known_optimum=self.OPTIMUM,
                penalty=self.WORST_FEASIBLE,
                family_param="accelerator",
                best_family="simd",
                target="analytic",
                description="The objective rises linearly into a crash cliff; the optimum lies on the crash boundary",
                reference="DeployBench original",
            ),
        )

    def cliff(self, accelerator: str, unroll: int) -> float:
        return self.CLIFF[accelerator] - 0.02 * (unroll - 1)

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        a, x, y, u = config["accelerator"], float(config["x"]), float(config["y"]), int(config["unroll"])
        cost = 0.5 + 0.25 * u + (1.0 if a == "gpu" else 0.0)
        if x > self.cliff(a, u):
            return Outcome.crashed(ErrorKind.RUNTIME, f"{a} pipeline faults beyond x = {self.cliff(a, u):.2f}", cost_s=0.3 * cost)
        score = self.GAIN[a] + 4.0 * x - 6.0 * (y - 0.5) ** 2 - 0.05 * (u - 4) ** 2
        return self.judge({"score": score, "power": x + y}, cost)
