"""SMAC3 (random-forest Bayesian optimisation) behind deploybench's ask/tell contract."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from smac import HyperparameterOptimizationFacade as HPOFacade
from smac import Scenario
from smac.main.exceptions import ConfigurationSpaceExhaustedException
from smac.model.random_forest.random_forest import RandomForest
from smac.runhistory.dataclasses import TrialInfo, TrialValue
from smac.runhistory.enumerations import StatusType

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome, Status

from .configspace import SpaceTranslation
from .costs import trial_costs
from .maximizer import OrderedLocalAndSortedRandomSearch

__all__ = ["SMACOptimizer"]

_STATUS = {Status.OK: StatusType.SUCCESS, Status.INFEASIBLE: StatusType.SUCCESS,
           Status.CRASHED: StatusType.CRASHED, Status.TIMEOUT: StatusType.TIMEOUT}


class SMACOptimizer(Optimizer):
    """SMAC3's ``HyperparameterOptimizationFacade`` (random forest, log-scaled EI, Sobol initial
    design, interleaved random configurations) driven by ask/tell.

    Crash policy: crashed and timed-out trials are told as ``StatusType.CRASHED`` / ``TIMEOUT``
    with the crash cost; infeasible (and early-stopped) trials as ``SUCCESS`` with a penalised cost.
    The costs are defined in :mod:`deploybench_smac.costs`.

    Parameters
    ----------
    n_initial:
        Size of the Sobol initial design; ``None`` keeps SMAC's rule (10 per hyperparameter, at
        most a quarter of the budget).
    n_trees:
        Trees of the random-forest surrogate.
    challengers:
        Random configurations the acquisition maximiser scores per ask (SMAC's default is 10000;
        one batched forest prediction, so cheap either way).
    local_search_iterations:
        Local searches the acquisition maximiser starts per ask (SMAC's default 10). They dominate
        the ask time (many small forest predictions); on crashy_branin at budget 30, 10, 5 and 2
        gave the same mean best over 10 seeds, 2 at well under half the time.
    random_probability:
        Probability that an ask returns a random configuration (SMAC's interleaving).
    retrain_after:
        Configurations proposed per surrogate fit (SMAC's default 8 suits cheap trials; deploybench
        trials are expensive, so 1 refits before every proposal).
    crash_cost:
        A fixed cost (in SMAC's minimised units, ``-objective`` for a maximised objective) for
        crashed and timed-out trials, as SMAC's ``Scenario(crash_cost=...)``; ``None`` uses the
        adaptive cost (worst cost so far plus a margin, re-imputed as trials arrive).
    """

    name = "smac"
    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=True, deterministic=True)

    def __init__(self, context: OptimizerContext, *,
                 n_initial: int | None = None, n_trees: int = 10, challengers: int = 1000,
                 local_search_iterations: int = 2, random_probability: float = 0.2, retrain_after: int = 1,
                 crash_cost: float | None = None):
        super().__init__(context)
        self.n_initial = n_initial
        self.n_trees = n_trees
        self.challengers = challengers
        self.local_search_iterations = local_search_iterations
        self.random_probability = random_probability
        self.retrain_after = retrain_after
        self.crash_cost = crash_cost

        self._translation = SpaceTranslation(self.space, seed=self.seed)
        self._workdir = tempfile.TemporaryDirectory(prefix="deploybench-smac-")  # removed when collected
        self._facade = self._make_facade()
        self._pending: dict[str, TrialInfo] = {}
        self._told: list[tuple[TrialInfo, Outcome]] = []
        self._costs: list[float] = []
        self._exhausted = False
        self._fallback_rng = self.make_rng(1)

    def _make_facade(self) -> HPOFacade:
        scenario = Scenario(
            self._translation.configspace,
            name="deploybench",
            output_directory=Path(self._workdir.name),
            deterministic=True,
            n_trials=max(1, self.budget),
            seed=self.seed,
            crash_cost=float(self.crash_cost) if self.crash_cost is not None else float(np.inf),
        )
        if self.n_initial is None:
            initial = HPOFacade.get_initial_design(scenario)
        else:
            initial = HPOFacade.get_initial_design(scenario, n_configs=int(self.n_initial), max_ratio=1.0)
        return HPOFacade(
            scenario,
            target_function=None,  # ask/tell only; SMAC never runs anything itself
            model=self._make_model(scenario),
            acquisition_maximizer=OrderedLocalAndSortedRandomSearch(
                scenario.configspace, challengers=self.challengers,
                local_search_iterations=self.local_search_iterations, seed=scenario.seed),
            initial_design=initial,
            random_design=HPOFacade.get_random_design(scenario, probability=self.random_probability),
            intensifier=HPOFacade.get_intensifier(scenario, max_config_calls=1),
            config_selector=HPOFacade.get_config_selector(scenario, retrain_after=self.retrain_after),
            logging_level=False,
            overwrite=True,
        )

    def _make_model(self, scenario: Scenario) -> RandomForest:
        # The facade's forest with two speed fixes that leave the model's definition alone (fully grown
        # trees): n_jobs=1, because SMAC's default (-1) hands ten tiny trees to joblib threads whose
        # hand-offs cost more than the trees; and max_leaf_nodes=None, because SMAC's 2**20 makes
        # scikit-learn pick its best-first builder, which preallocates for 2**20 leaves (~90 ms a tree).
        return RandomForest(scenario.configspace, log_y=True, n_trees=self.n_trees, ratio_features=1.0,
                            min_samples_split=2, min_samples_leaf=1, bootstrapping=True, seed=scenario.seed,
                            instance_features=scenario.instance_features, max_leaf_nodes=None, n_jobs=1)

    # -- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> dict[str, Any]:
        if not self._exhausted:
            try:
                with warnings.catch_warnings():
                    # SMAC's local search logs np.mean of an empty timing list when it takes no step
                    warnings.filterwarnings("ignore", "Mean of empty slice", RuntimeWarning)
                    warnings.filterwarnings("ignore", "invalid value encountered in scalar divide", RuntimeWarning,
                                            module=r"numpy\._core\._methods")
                    info = self._facade.ask()
            except (ConfigurationSpaceExhaustedException, StopIteration):
                # a finite space with every configuration tried: SMAC's generator is finished
                self._exhausted = True
            else:
                config = self._translation.to_config(info.config)
                self._pending[self.space.key(config)] = info
                return config
        return self.space.sample(self._fallback_rng)

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        info = self._pending.pop(self.space.key(config), None)
        if info is None:  # a configuration SMAC did not propose (or one asked after exhaustion)
            if self._exhausted:
                return
            info = TrialInfo(self._translation.to_configuration(config), seed=self._any_seed())
        self._told.append((info, outcome))
        costs = trial_costs([o for _, o in self._told], self.objective.sign, self.crash_cost)
        runhistory = self._facade.runhistory
        # re-score earlier trials whose cost moved (the adaptive references W_ok, s, crash cost)
        for (old_info, old_outcome), old, new in zip(self._told[:-1], self._costs, costs[:-1]):
            if old != new:
                runhistory.add(config=old_info.config, cost=new, status=_STATUS[old_outcome.status],
                               instance=old_info.instance, seed=old_info.seed, budget=old_info.budget,
                               force_update=True)
        self._costs = costs
        value = TrialValue(cost=costs[-1], time=float(outcome.cost_s), status=_STATUS[outcome.status],
                           additional_info={"deploybench_status": outcome.status.value})
        self._facade.tell(info, value, save=False)

    def _any_seed(self) -> int | None:
        for info, _ in self._told:
            return info.seed
        for info in self._pending.values():
            return info.seed
        return None
