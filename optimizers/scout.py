"""``scout``: an AutoScout-style optimizer, reimplemented from the paper's description.

AutoScout ("AutoScout: Structured Optimization for Automating ML System Configuration",
arXiv 2603.11603, 2026) publishes no code. This is a reimplementation from the paper's abstract and
secondary descriptions of it; every constant and several mechanisms had to be guessed (listed in
:class:`Scout`'s docstring). Its parts live in small modules: :mod:`.scout_tree` (space split, MCTS
trees, ordering tournament), :mod:`.scout_dense` (coordinate search with momentum) and
:mod:`.scout_evaluator` (R²-weighted regressor ensemble and the fidelity switch).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping

import numpy as np

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome, Status
from deploybench.fidelity import Suggestion

from .scout_dense import CoordinateSearch
from .scout_evaluator import FidelitySwitch, RegressorEnsemble
from .scout_tree import StructureTree, Tournament, orderings, split_space

__all__ = ["Scout", "reward"]

SPARSE, DENSE = "sparse", "dense"


def reward(outcome: Outcome, value: float | None, lo: float, hi: float) -> float:
    """Outcomes on one scale that keeps DeployBench's order crash < infeasible < feasible: crashes and
    timeouts 0; infeasible in (0, 0.25], falling with the unitless violation (early stops as a
    violation of at least 3); feasible in [0.5, 1], the maximised objective scaled by the range seen."""
    if outcome.failed:
        return 0.0
    if outcome.status is Status.INFEASIBLE or value is None:
        v = max(outcome.total_violation, 3.0 if outcome.early_stopped else 0.0)
        return 0.25 / (1.0 + v)
    if hi > lo:
        return 0.5 + 0.5 * (value - lo) / (hi - lo)
    return 0.75


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rank(outcome: Outcome, value: float | None) -> tuple[float, float] | None:
    """Larger is better: feasible by maximised objective, then infeasible by violation (early stops as
    a violation of at least 3); None for crashes and time-outs (nothing to refine)."""
    if outcome.failed:
        return None
    if outcome.feasible and value is not None:
        return (1.0, value)
    return (0.0, -max(outcome.total_violation, 3.0 if outcome.early_stopped else 0.0))


class Scout(Optimizer):
    """AutoScout-style search: MCTS over structure, coordinate search over execution parameters, a
    UCB1 bandit between the two, an ordering tournament and a fidelity-adaptive evaluator.

    Reimplemented from the description of AutoScout (arXiv 2603.11603); no code of the authors was
    available. What follows the description: the sparse/dense split (here derived from the space:
    categoricals and small-domain condition parents are structural, other numerics are execution
    parameters); MCTS whose levels each fix one structural feature, children restricted by the
    space's conditions; coordinate-wise search with momentum for the execution parameters; a UCB1
    bandit choosing which side spends the next evaluation, credited with a difference of
    differences; a successive-halving tournament over feature orderings; an ensemble of linear
    regressors weighted by R², trusted while its MAPE against real measurements stays under a
    threshold, after which only real profiling is used.

    What was guessed: the reward scale (crash 0, infeasible (0, 0.25], feasible [0.5, 1], see
    :func:`reward`); the UCT and UCB constants; the credit formula (the step's gain in best value
    minus the other arm's mean gain over the last ``window`` steps); that every tree learns from every
    evaluation and entrants are ranked by the mean reward of their own proposals; the tournament's
    start (the space's declared order plus random orderings, as no past tasks exist); the regressors'
    feature views, ridge fit and leave-one-out R²; MAPE over the last 3 checks (each check the worst
    error over the objective and every capped metric the task's simulator predicted) and a switch that
    is never undone; that the regressors also predict each capped metric (latency, memory: the
    "performance" AutoScout's simulators model) so screening prefers candidates predicted within the
    caps; that before anything is feasible the dense side refines the least infeasible configuration
    (DeployBench's order), not nothing; the evaluation pipeline on multi-fidelity tasks (structural candidates go to the
    task's simulator level while simulating; every ``check_every`` simulated steps the best-predicted
    one, or every other time a random simulated one, is profiled (a wrong feasibility verdict counts
    as a 100 % error); a probe level, when offered, screens crashes and the weaker half before a full
    run, but only while its observed cost is below its rejection rate times a full run's cost;
    execution-parameter moves skip the simulator).

    Parameters
    ----------
    n_orderings: tournament entrants (orderings of the structural features).
    halve_every: proposals per entrant between halvings.
    uct_c, ucb_c: exploration constants of the tree (UCT) and of the arm bandit (UCB1).
    window: steps over which the other arm's mean gain is taken (difference of differences).
    momentum, step, min_step: coordinate search (unit-scale step, halved after two failed directions).
    n_screen: completions of a structure scored by the ensemble before one is evaluated.
    mape_threshold: the ensemble's error above which only real profiling is used.
    check_every: simulated steps between two profiled checks of the best-predicted candidate.
    dense, orchestrator, simulators, tournament: ablation switches (False: no coordinate search;
    arms alternate; no ensemble screening and no simulator level; only the declared ordering).
    """

    name = "scout"
    tags = OptimizerTags(multi_fidelity=True)

    def __init__(self, context: OptimizerContext, *,
                 n_orderings: int = 6, halve_every: int = 4, uct_c: float = 0.5, ucb_c: float = 0.5,
                 window: int = 6, momentum: float = 0.5, step: float = 0.25, min_step: float = 0.02,
                 n_screen: int = 16, mape_threshold: float = 0.2, check_every: int = 3,
                 dense: bool = True, orchestrator: bool = True, simulators: bool = True, tournament: bool = True):
        super().__init__(context)
        self.n_orderings, self.halve_every, self.uct_c, self.ucb_c = n_orderings, halve_every, uct_c, ucb_c
        self.window, self.momentum, self.step, self.min_step = window, momentum, step, min_step
        self.n_screen, self.mape_threshold, self.check_every = n_screen, mape_threshold, check_every
        self.dense, self.orchestrator, self.simulators, self.tournament = dense, orchestrator, simulators, tournament

        self._rng = self.make_rng(1)
        self.sparse_names, self.dense_names = split_space(self.space)
        orders = orderings(self.space, self.sparse_names, max(1, n_orderings) if tournament else 1, self.make_rng(2))
        trees = [StructureTree(self.space, o, uct_c, self.make_rng(10 + i)) for i, o in enumerate(orders)]
        self._tournament = Tournament(trees, halve_every)
        self._coords = CoordinateSearch(self.space, self.dense_names, momentum=momentum, step=step, min_step=min_step,
                                        rng=self.make_rng(3))
        self._ensemble = RegressorEnsemble(self._views())
        # the performance metrics the caps judge (latency, memory, ...): what AutoScout's simulators
        # predict; here they screen out candidates predicted to break a cap
        self._limit_models = {c.metric: RegressorEnsemble(self._views()) for c in self.constraints}
        self._limit_rows: dict[str, tuple[list[np.ndarray], list[float]]] = {c.metric: ([], []) for c in self.constraints}
        self._switch = FidelitySwitch(mape_threshold)
        if not simulators:
            self._switch.mode = "profile"

        self._level_costs: dict[str, list[float]] = {}
        self._probes = self._probes_rejected = 0
        self._queue: deque[tuple[dict, str, int | None]] = deque()
        self._in_flight: tuple[str, str, int | None] | None = None
        self._steps: dict[int, str] = {}  # step id -> arm
        self._step_tree: dict[int, int] = {}
        self._credited: set[int] = set()
        self._n_steps = 0
        self._pulls = {SPARSE: 0, DENSE: 0}
        self._credit = {SPARSE: 0.0, DENSE: 0.0}
        self._gains = {SPARSE: deque(maxlen=max(1, window)), DENSE: deque(maxlen=max(1, window))}
        self._lo, self._hi = math.inf, -math.inf
        self._best_value = -math.inf  # best maximised feasible value seen at any level (for credit)
        self._incumbent: tuple[float, dict] | None = None  # best full-fidelity feasible
        # the best full-fidelity outcome in DeployBench's order (feasible by objective, then infeasible
        # by violation): the point the dense side refines, so it also walks out of infeasibility
        self._anchor: tuple[tuple[float, float], dict] | None = None
        self._best_probe: tuple[float, dict] | None = None
        self._full: dict[str, Outcome] = {}
        self._asked: set[tuple[str, str]] = set()
        self._simulated: dict[str, float | None] = {}
        self._simulated_metrics: dict[str, dict[str, Any]] = {}
        self._simulated_feasible: dict[str, bool] = {}
        self._n_checks = 0
        self._unpromoted: dict[str, dict] = {}
        self._since_check = 0
        self._X: list[np.ndarray] = []
        self._y: list[float] = []
        self._sim_for_fit: list[float | None] = []
        self.mode_history: list[tuple[int, str]] = []

    # -- levels ------------------------------------------------------------------------------------
    def _level(self, kind: str) -> str | None:
        return next((f.name for f in self.fidelities if f.kind == kind), None)

    @property
    def _sim_level(self) -> str | None:
        return self._level("simulator") if self.simulators else None

    @property
    def _probe_level(self) -> str | None:
        return self._level("probe")

    def _real_level(self) -> str:
        """Where a candidate goes for real: the probe (a crash and weak-half screen) while screening pays,
        else full. A probe saves a full run only when it rejects the candidate, so it pays while its cost
        is below the rejection rate times a full run's cost (costs as observed, the declared relative
        cost until both levels were seen; the rejection rate Laplace-smoothed)."""
        probe = self._probe_level
        if probe is None:
            return "full"
        costs = self._level_costs
        if costs.get(probe) and costs.get("full"):
            ratio = (sum(costs[probe]) / len(costs[probe])) / (sum(costs["full"]) / len(costs["full"]))
        else:
            ratio = next(f.relative_cost for f in self.fidelities if f.name == probe)
        rejection = (self._probes_rejected + 1) / (self._probes + 2)
        return probe if ratio < rejection else "full"

    # -- encoding views for the ensemble --------------------------------------------------------------
    def _views(self) -> dict:
        columns: dict[str, list[int]] = {SPARSE: [], DENSE: []}
        i = 0
        for p in self.space:
            width = p.width + (1 if p.condition is not None else 0)
            side = SPARSE if p.name in self.sparse_names else DENSE
            columns[side] += list(range(i, i + width))
            i += width
        s, d = np.array(columns[SPARSE], dtype=int), np.array(columns[DENSE], dtype=int)
        both = np.concatenate([s, d])
        views = {"structure": lambda X: X[:, s], "structure+execution": lambda X: X[:, both]}
        if len(d):
            views["structure+execution²"] = lambda X: np.hstack([X[:, both], X[:, d] ** 2])
        return views

    # -- ask -----------------------------------------------------------------------------------------
    def ask(self) -> dict[str, Any] | Suggestion:
        if not self._queue:
            self._queue.append(self._new_step())
        config, level, step = self._queue.popleft()
        self._in_flight = (self.space.key(config), level, step)
        self._asked.add((self.space.key(config), level))
        if len(self.fidelities) == 1:
            return config
        return Suggestion(config, level)

    def _choose_arm(self) -> str:
        dense_possible = self.dense and bool(self.dense_names) and self._anchor is not None \
            and not self._coords.exhausted
        if not dense_possible:
            return SPARSE
        if not self.orchestrator:
            return DENSE if self._n_steps % 2 else SPARSE
        for arm in (SPARSE, DENSE):
            if self._pulls[arm] == 0:
                return arm
        total = self._pulls[SPARSE] + self._pulls[DENSE]

        def ucb(arm: str) -> float:
            n = self._pulls[arm]
            return self._credit[arm] / n + self.ucb_c * math.sqrt(2.0 * math.log(total) / n)

        return max((SPARSE, DENSE), key=ucb)

    def _new_step(self) -> tuple[dict, str, int]:
        self._n_steps += 1
        step = self._n_steps
        arm = self._choose_arm()
        config = self._coords.propose() if arm == DENSE else None
        if config is None or self._measured(config, "full"):
            arm = SPARSE
            tree_index, tree = self._tournament.next_tree()
            self._step_tree[step] = tree_index
            config = self._complete(tree.select())
        self._steps[step] = arm
        self._pulls[arm] += 1
        simulate = arm == SPARSE and self._switch.mode == "simulate" and self._sim_level is not None
        level = self._sim_level if simulate else self._real_level()
        return config, level, step

    def _measured(self, config: Mapping[str, Any], level: str) -> bool:
        return (self.space.key(config), level) in self._asked

    def _complete(self, structure: dict) -> dict:
        """A configuration for ``structure``: the incumbent's execution parameters and random ones,
        screened by the ensemble while it is trusted; not one already evaluated, when avoidable."""
        candidates = []
        if self._anchor is not None:
            candidates.append(self.space.complete({**self._anchor[1], **structure}, self._rng))
        n = self.n_screen if self._screening else 4
        for _ in range(max(1, n)):
            candidates.append(self.space.complete(structure, self._rng))
        level = self._sim_level if self._switch.mode == "simulate" and self._sim_level else self._real_level()
        fresh = [c for c in candidates if not self._measured(c, level) and not self._measured(c, "full")]
        candidates = fresh or [self.space.sample(self._rng) for _ in range(4)]
        if len(candidates) > 1 and self._screening:
            return candidates[self._best_screened(candidates)]
        if self._anchor is not None and len(candidates) > 1 and self._rng.random() < 0.5:
            return candidates[0]
        return candidates[int(self._rng.integers(len(candidates)))]

    # -- tell ----------------------------------------------------------------------------------------
    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        config = dict(config)
        key = self.space.key(config)
        step = None
        if self._in_flight is not None and self._in_flight[0] == key:
            step = self._in_flight[2]
        self._in_flight = None
        value = self.maximised(outcome.objective) if (outcome.objective is not None and outcome.ran) else None
        if value is not None and outcome.feasible:
            self._lo, self._hi = min(self._lo, value), max(self._hi, value)
        r = reward(outcome, value if outcome.feasible else None, self._lo, self._hi)
        self._tournament.update(config, r)
        if step is not None and step in self._step_tree and step not in self._credited:
            self._tournament.trees[self._step_tree[step]].own_rewards.append(r)
        gain = 0.0
        if outcome.feasible and value is not None and value > self._best_value:
            span = (self._hi - self._lo) if self._hi > self._lo else max(1.0, abs(value))
            gain = 0.0 if self._best_value == -math.inf else min(1.0, (value - self._best_value) / span)
            self._best_value = value
        if step is not None and step not in self._credited:
            self._credit_arm(self._steps.get(step, SPARSE), gain)
            self._credited.add(step)

        self._level_costs.setdefault(outcome.fidelity, []).append(outcome.cost_s)
        if outcome.predicted:
            self._after_simulation(config, key, outcome, step)
        elif outcome.fidelity == "full":
            self._after_full(config, key, outcome, value, step)
        else:
            self._after_probe(config, outcome, value, step)

    def _credit_arm(self, arm: str, gain: float) -> None:
        other = DENSE if arm == SPARSE else SPARSE
        baseline = float(np.mean(self._gains[other])) if self._gains[other] else 0.0
        self._credit[arm] += gain - baseline
        self._gains[arm].append(gain)

    def _after_simulation(self, config: dict, key: str, outcome: Outcome, step: int | None) -> None:
        self._simulated[key] = outcome.objective if outcome.ran else None
        self._simulated_metrics[key] = {c.metric: outcome.metrics.get(c.metric) for c in self.constraints}
        self._simulated_feasible[key] = outcome.feasible
        if outcome.ran:
            self._unpromoted[key] = config
        self._since_check += 1
        if self._since_check >= max(1, self.check_every) and self._unpromoted:
            self._since_check = 0
            self._n_checks += 1
            if self._n_checks % 2:  # the best-predicted candidate ...
                pick = self._best_predicted()
            else:  # ... and, every other check, any simulated one: checks of only the candidates the
                # simulator liked would never see what it wrongly rejects
                keys = sorted(self._unpromoted)
                pick = self._unpromoted[keys[int(self._rng.integers(len(keys)))]]
            del self._unpromoted[self.space.key(pick)]
            self._queue.append((pick, self._real_level(), None))

    @property
    def _screening(self) -> bool:
        """Candidates are screened while the simulators are on and trusted (MAPE under the threshold)."""
        return self.simulators and self._switch.mode == "simulate" and (
            self._ensemble.trusted or any(m.trusted for m in self._limit_models.values()))

    def _best_screened(self, configs: list[dict], simulated: list[float | None] | None = None) -> int:
        """Index of the candidate predicted to break no cap (violation under 0.02) and, among those,
        to have the best objective; a task's simulator value stands in where the ensemble has none."""
        X = self.space.encode_many(configs)
        violation = np.zeros(len(configs))
        for c in self.constraints:
            model = self._limit_models[c.metric]
            predicted = model.predict(X) if model.trusted else None
            if predicted is not None:
                if self._limit_rows[c.metric][1] and min(self._limit_rows[c.metric][1]) > 0:
                    predicted = np.exp(predicted)  # fitted on the log of a positive metric
                violation += np.array([c.violation(v) if np.isfinite(v) else 0.0 for v in predicted])
        objective = self._ensemble.predict(X, simulated)
        if objective is None and simulated is not None:
            objective = np.array([v if v is not None else np.nan for v in simulated], dtype=float)
        if objective is None:  # no objective model yet: any candidate predicted within the caps
            loss = self._rng.random(len(configs))
        else:
            loss = np.where(np.isfinite(objective), -self.objective.sign * objective, np.inf)
        return int(np.lexsort((loss, np.where(violation < 0.02, 0.0, violation)))[0])

    def _best_predicted(self) -> dict:
        keys = list(self._unpromoted)
        configs = [self._unpromoted[k] for k in keys]
        return configs[self._best_screened(configs, [self._simulated.get(k) for k in keys])]

    def _prediction_pairs(self, x: np.ndarray, key: str, outcome: Outcome) -> list[tuple[float, float]]:
        """(predicted, measured) for the objective (the ensemble, before it learns this point) and for
        each capped metric the task's simulator level predicted for this configuration."""
        pairs = []
        predicted = self._ensemble.predict(x[None, :], [self._simulated.get(key)])
        if predicted is not None and np.isfinite(predicted[0]):
            pairs.append((float(predicted[0]), float(outcome.objective)))
        for metric, value in self._simulated_metrics.get(key, {}).items():
            measured = outcome.metrics.get(metric)
            if _number(value) and _number(measured):
                pairs.append((float(value), float(measured)))
        return pairs

    def _fit_limits(self, x: np.ndarray, outcome: Outcome) -> None:
        for c in self.constraints:
            value = outcome.metrics.get(c.metric)
            if not _number(value):
                continue
            rows, ys = self._limit_rows[c.metric]
            rows.append(x)
            ys.append(float(value))
            y = np.asarray(ys)
            self._limit_models[c.metric].fit(np.vstack(rows), np.log(y) if y.min() > 0 else y)

    def _after_probe(self, config: dict, outcome: Outcome, value: float | None, step: int | None) -> None:
        promising = outcome.ran and outcome.total_violation <= 0.1 and not outcome.early_stopped
        if promising and value is not None and self._full:
            feasible = sorted(self.maximised(o.objective) for o in self._full.values()
                              if o.feasible and o.objective is not None)
            if feasible and value < feasible[len(feasible) // 2]:
                promising = False  # the weaker half is not worth a full run
        if outcome.feasible and value is not None and (self._best_probe is None or value > self._best_probe[0]):
            self._best_probe = (value, config)
        self._probes += 1
        self._probes_rejected += not promising
        if promising and not self._measured(config, "full"):
            self._queue.appendleft((config, "full", step))
        elif step is not None and self._steps.get(step) == DENSE:
            self._coords.result(False)

    def _after_full(self, config: dict, key: str, outcome: Outcome, value: float | None, step: int | None) -> None:
        self._full[key] = outcome
        if outcome.ran and outcome.objective is not None:
            x = self.space.encode(config)
            if self._switch.mode == "simulate":
                verdict = self._simulated_feasible.get(key)
                self._switch.check(self._prediction_pairs(x, key, outcome),
                                   verdict_wrong=verdict is not None and verdict != outcome.feasible)
                if self._switch.mode == "profile":
                    self.mode_history.append((self._n_steps, "profile"))
            self._X.append(x)
            self._y.append(float(outcome.objective))
            self._sim_for_fit.append(self._simulated.get(key))
            self._ensemble.fit(np.vstack(self._X), np.asarray(self._y), self._sim_for_fit)
            self._fit_limits(x, outcome)
        if outcome.feasible and value is not None and (self._incumbent is None or value > self._incumbent[0]):
            self._incumbent = (value, dict(config))
        rank = _rank(outcome, value)
        improved = rank is not None and (self._anchor is None or rank > self._anchor[0])
        if step is not None and self._steps.get(step) == DENSE:
            self._coords.result(improved)
        if improved:
            self._anchor = (rank, dict(config))
            self._coords.reset(config)

    # -- the answer ------------------------------------------------------------------------------------
    def recommend(self) -> dict[str, Any] | None:
        """The best full-fidelity feasible configuration; failing that the best probe-feasible one."""
        if self._incumbent is not None:
            return dict(self._incumbent[1])
        if self._best_probe is not None:
            return dict(self._best_probe[1])
        return None
