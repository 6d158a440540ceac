"""Optuna's own samplers behind deploybench's ask/tell contract, told what Optuna's documentation
prescribes (:mod:`deploybench_optuna.policy`)."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Iterator, Mapping

import optuna
from optuna.samplers import BaseSampler, CmaEsSampler, GPSampler
from optuna.trial import TrialState

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome

from .policy import Policy, Verdict, verdict
from .samplers import build_sampler, policy_for, resolve_sampler
from .space import suggest_config, to_optuna

__all__ = ["OptunaSampler", "OptunaGP", "OptunaCmaEs"]


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every finished trial at INFO; a benchmark prints its own progress. The level is
    restored afterwards, so the process's logging setup is left as it was."""
    before = optuna.logging.get_verbosity()
    if before >= logging.WARNING:
        yield
        return
    optuna.logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


class _StudyAdapter(Optimizer):
    """An in-memory Optuna study driven by ask/tell (define-by-run over the space's active parameters).

    Repeats: Optuna samplers can propose a configuration already measured (finite spaces, rounded
    integers, categoricals). With ``avoid_duplicates`` the adapter does what Optuna's FAQ ("How can
    I ignore duplicated samples?") shows: when the configuration has a COMPLETE trial, the repeated
    trial is told that trial's value (and constraints) again, no trial of the budget is spent, and
    the study is asked again; after ``max_retries`` such repeats in one ask the repeat is returned
    and measured again. The extra trials stay in the study (Optuna's own ``n_trials`` counts them).
    Like the FAQ's example, only COMPLETE results are reused: a configuration that failed or was
    pruned is measured again when proposed again (a sampler that ignores FAIL trials learnt
    nothing from it, so telling the FAIL again would only make it propose the same point again;
    on edge_wide GPSampler did that 731 times in 100 trials).
    """

    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=True, deterministic=True)

    def __init__(self, context: OptimizerContext) -> None:
        super().__init__(context)

    def _start(self, sampler: BaseSampler, policy: Policy) -> None:
        self._policy = policy
        with _quiet_optuna():
            self._study = optuna.create_study(direction=self.objective.direction, sampler=sampler)
        self._pending: dict[str, list[optuna.Trial]] = {}  # config key -> asked, not yet told
        self._record: dict[str, tuple[Verdict, int]] = {}  # config key -> (what was told, trial number)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (for inspection: its trials say exactly what the sampler was told)."""
        return self._study

    def ask(self) -> dict[str, Any]:
        retries = max(0, int(self.max_retries)) if self.avoid_duplicates else 0
        with _quiet_optuna():
            for attempt in range(retries + 1):
                trial = self._study.ask()
                config = suggest_config(trial, self.space)
                key = self.space.key(config)
                earlier = self._record.get(key)
                if earlier is not None and earlier[0].state is TrialState.COMPLETE and attempt < retries:
                    told, number = earlier  # Optuna's FAQ: reuse the result of the duplicated parameters
                    replace(told, attrs={**told.attrs, "repeat_of": number}).apply(self._study, trial)
                    continue
                self._pending.setdefault(key, []).append(trial)
                return config
        raise AssertionError("unreachable: the last attempt always returns")

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        key = self.space.key(config)
        told = verdict(outcome, self.constraints, self._policy)
        with _quiet_optuna():
            waiting = self._pending.get(key)
            if waiting:
                trial = waiting.pop(0)
                if not waiting:
                    del self._pending[key]
                told.apply(self._study, trial)
                number = trial.number
            else:  # a configuration this study did not propose: added as a finished trial
                params, dists = to_optuna(self.space, config)
                self._study.add_trial(told.frozen(params, dists))
                number = self._study.get_trials(deepcopy=False)[-1].number
        self._record[key] = (told, number)


class OptunaSampler(_StudyAdapter):
    """Any Optuna sampler, by name, as a peer: ``-o optuna:GPSampler``, ``-o optuna:QMCSampler``.

    ``sampler`` is a class of ``optuna.samplers`` (TPESampler, GPSampler, CmaEsSampler, QMCSampler,
    RandomSampler, NSGAIISampler, NSGAIIISampler, BruteForceSampler, GridSampler, ...) or an import
    path ``module:Class`` of any ``BaseSampler`` subclass; ``sampler_kwargs`` are its keyword
    arguments (JSON values; Optuna's defaults otherwise). The case seed goes to the sampler's
    ``seed`` argument when it has one. An unknown name fails at construction, listing the known
    samplers and the closest name.

    What the sampler is told (:mod:`deploybench_optuna.policy`, after Optuna's FAQ and
    ``BaseSampler`` docs): ok and infeasible trials are COMPLETE with the objective and one
    constraint per task constraint, ``(measured - cap) / scale`` set with ``Trial.set_constraint``
    (TPE, NSGA-II/III and GP use them; the others ignore them); early-stopped trials are PRUNED with
    the objective, if any, as their step-0 report and the constraints that were measured; crashed
    and timed-out trials, and trials that produced no objective, are FAIL, which every built-in
    sampler ignores ("failed trials are regarded as deleted in the samplers' perspective"), except
    GridSampler and BruteForceSampler, which count them as visited. CmaEsSampler (no constraint
    support) is told infeasible trials as FAIL instead (see ``optuna_cmaes``). Not told: crash kinds,
    ``cost_s``, other metrics (kept as the trial's ``deploybench`` user attribute only).

    Repeats are answered from the record, as Optuna's FAQ does (see ``avoid_duplicates``).

    Parameters
    ----------
    sampler: a class name of ``optuna.samplers`` or ``module:Class``.
    sampler_kwargs: keyword arguments of the sampler (not ``seed``).
    avoid_duplicates: answer a repeated configuration from the record and ask again.
    max_retries: repeats answered per ask before one is measured again.
    """

    name = "optuna"
    shorthand_param = "sampler"

    def __init__(self, context: OptimizerContext, *, sampler: str = "TPESampler",
                 sampler_kwargs: dict | None = None, avoid_duplicates: bool = True, max_retries: int = 10) -> None:
        super().__init__(context)
        self.sampler = sampler
        self.sampler_kwargs = sampler_kwargs
        self.avoid_duplicates = avoid_duplicates
        self.max_retries = max_retries
        self.validate_params({"sampler": sampler, "sampler_kwargs": sampler_kwargs})
        cls = resolve_sampler(sampler)
        self._start(build_sampler(cls, sampler_kwargs, self.seed), policy_for(cls))

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> None:
        """An unknown sampler or sampler argument is a usage error when cases are collected."""
        sampler, kwargs = params.get("sampler", "TPESampler"), params.get("sampler_kwargs")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ValueError(f"sampler_kwargs must be a JSON object (dict) of {sampler}'s arguments, "
                             f"got {type(kwargs).__name__}")
        with warnings.catch_warnings():  # e.g. QMCSampler's ExperimentalWarning: printed once when a case runs
            warnings.simplefilter("ignore")
            build_sampler(resolve_sampler(sampler), kwargs, 0)  # raises ValueError naming what is allowed


class OptunaGP(_StudyAdapter):
    """Optuna's ``GPSampler`` (Matern-5/2 ARD Gaussian process; log EI, and log constrained EI once
    constraints are set) with Optuna's documented constraint API, seeded.

    Told (``optuna.samplers.GPSampler`` docs: "log constrained expected improvement (logCEI) for
    single-objective constrained optimization", constraints through ``Trial.set_constraint``; the
    ``constraints_func`` argument is deprecated in Optuna 5.0):

    - ok / infeasible: COMPLETE, the objective, and per task constraint ``(measured - cap) /
      scale`` (unitless, negative when met). GP fits one GP per constraint and multiplies EI by the
      probability that all are <= 0; its incumbent is the best *feasible* trial.
    - early-stopped: PRUNED (``study.tell(trial, state=PRUNED)``, the objective as step-0 report if
      there is one). GPSampler fits COMPLETE trials only, so it learns nothing from an early stop
      (on the deployment tasks an early stop measures neither the objective nor a capped metric).
    - crashed / timeout / ran without an objective: FAIL, Optuna's state for a trial that raised or
      returned NaN. GPSampler ignores FAIL trials: a crash region stays as attractive as its model
      says; no constant is invented for it.
    - not told: crash kinds, ``cost_s`` (GPSampler has no cost model), metrics beyond the constraints.

    Conditional parameters are outside GPSampler's search space (Optuna's intersection search
    space) and are drawn by its independent sampler (random, seeded). Repeats are answered from the
    record (see ``avoid_duplicates``).

    Consequence, measured (budget 100, seeds 0-2): because FAIL trials leave the model unchanged,
    once GPSampler's acquisition optimum lies in a crash region it proposes (nearly) the same
    crashing configuration again and again: 90-96 % waste on crashy_branin (mostly crashes), 96-97 %
    on edge_wide with 37-73 exact repeats measured. That is Optuna's documented failure handling
    (optuna#332, #566), not an adapter choice.

    Speed (median ask+tell, 2 shared cores, ``OMP_NUM_THREADS=1``, with ``greenlet``): 290 ms at
    trial 25 and 330 ms at trial 100 on crashy_branin; 1 ms (still in its random start) and 140 ms
    on edge_wide. The GP is fitted to COMPLETE trials only, about 13 of 100 there; with 100
    COMPLETE trials (hierarchical_rosenbrock) one ask took 0.7-1.1 s, and the first fit without a
    warm kernel cache 8 s. Without ``greenlet`` (a dependency of this package, in Optuna's
    ``optional`` extra) GPSampler warns and runs its local searches one by one: about 1 s per ask
    at trial 25 on crashy_branin.

    Parameters
    ----------
    n_startup_trials: COMPLETE trials drawn by the independent sampler first (Optuna's default 10).
    deterministic_objective: fix the GP noise to its minimum (Optuna's experimental option).
    avoid_duplicates, max_retries: as for ``optuna``.
    """

    name = "optuna_gp"

    def __init__(self, context: OptimizerContext, *, n_startup_trials: int = 10,
                 deterministic_objective: bool = False, avoid_duplicates: bool = True, max_retries: int = 10) -> None:
        super().__init__(context)
        self.n_startup_trials = n_startup_trials
        self.deterministic_objective = deterministic_objective
        self.avoid_duplicates = avoid_duplicates
        self.max_retries = max_retries
        kwargs: dict[str, Any] = {"n_startup_trials": n_startup_trials}
        if deterministic_objective:  # experimental in Optuna: passed only when asked for
            kwargs["deterministic_objective"] = True
        self._start(build_sampler(GPSampler, kwargs, self.seed), Policy.CONSTRAINTS)


class OptunaCmaEs(_StudyAdapter):
    """Optuna's ``CmaEsSampler`` (the ``cmaes`` package), seeded.

    CMA-ES has no constraint support in Optuna: the FAQ lists TPE, NSGA-II/III and GP as the
    samplers for constraints, and ``CmaEsSampler.after_trial`` warns "Constraints have been set, but
    CmaEsSampler will not use them". So no constraint is set. What it is told:

    - ok: COMPLETE with the objective.
    - infeasible, crashed, timeout, ran without an objective: FAIL. Optuna ignores FAIL trials in
      sampling (``BaseSampler`` docs), and CmaEsSampler updates its distribution only when a
      generation has ``popsize`` COMPLETE trials, so a FAIL trial is replaced by a fresh sample from
      the same distribution: the resampling of infeasible solutions that Hansen's CMA-ES tutorial
      (arXiv:1604.00772, cited by the CmaEsSampler docs) gives as the simple constraint handling.
      If a whole generation's region is infeasible, CMA-ES keeps sampling it until enough feasible
      trials arrive.
    - early-stopped: PRUNED with the objective (if any) as step-0 report; ignored unless
      ``consider_pruned_trials=True``, which makes CMA-ES use that partial objective as a value.
    - not told: violations, crash kinds, ``cost_s``.

    CmaEsSampler does not model categorical parameters (its docs recommend OptunaHub's CatCMAwM,
    not a dependency here): they and conditional parameters are drawn by its independent sampler
    (random, seeded). Ordinals are IntDistributions over their index, so CMA-ES models them.
    Repeats are answered from the record (see ``avoid_duplicates``): rounded integers and
    ordinals repeat often once the step size shrinks.

    Speed: about 1 ms per ask+tell (5 ms at most at trial 100 on crashy_branin).

    Parameters
    ----------
    n_startup_trials: trials drawn by the independent sampler first (Optuna's default 1).
    popsize: population size (None: CMA-ES's default, 4 + 3 ln(dimension)).
    with_margin: CMA-ES with margin for integer and ordinal parameters (Optuna's experimental option).
    consider_pruned_trials: use early-stopped trials' partial objective as values.
    avoid_duplicates, max_retries: as for ``optuna``.
    """

    name = "optuna_cmaes"
    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=False, deterministic=True)

    def __init__(self, context: OptimizerContext, *, n_startup_trials: int = 1, popsize: int | None = None,
                 with_margin: bool = False, consider_pruned_trials: bool = False, avoid_duplicates: bool = True,
                 max_retries: int = 10) -> None:
        super().__init__(context)
        self.n_startup_trials = n_startup_trials
        self.popsize = popsize
        self.with_margin = with_margin
        self.consider_pruned_trials = consider_pruned_trials
        self.avoid_duplicates = avoid_duplicates
        self.max_retries = max_retries
        kwargs: dict[str, Any] = {"n_startup_trials": n_startup_trials, "popsize": popsize}
        if with_margin:  # experimental options: passed only when asked for
            kwargs["with_margin"] = True
        if consider_pruned_trials:
            kwargs["consider_pruned_trials"] = True
        self._start(build_sampler(CmaEsSampler, kwargs, self.seed), Policy.FEASIBLE_ONLY)
