"""What an Optuna study is told about each deploybench outcome.

Optuna's documentation fixes the vocabulary:

- a trial whose objective raised or returned NaN is ``TrialState.FAIL`` (FAQ, "How are exceptions
  from trials handled?" and "How are NaNs returned by trials handled?"), and "the failed trials are
  ignored by any built-in samplers when they sample new parameters" (``BaseSampler.sample_relative``
  / ``sample_independent``);
- a trial stopped before it finished is ``study.tell(trial, state=TrialState.PRUNED)`` after
  ``trial.report(value, step)`` (``Study.tell``);
- constraints are ``Trial.set_constraint(key, value)``, feasible when every value is <= 0; the
  samplers that use them are TPE, NSGA-II, NSGA-III and GP (FAQ, "How can I optimize a model with
  some constraints?"). ``constraints_func`` is deprecated since Optuna 5.0 and not used here.

Two policies follow from it (:class:`Policy`):

``CONSTRAINTS`` (every sampler but CMA-ES):

============================== ========= ================= ===========================================
outcome                        state     value             constraints (one per task constraint)
============================== ========= ================= ===========================================
ok                             COMPLETE  objective         ``(measured - cap) / scale``, all <= 0
infeasible, all measured       COMPLETE  objective         ``(measured - cap) / scale``, some > 0
early-stopped                  PRUNED    objective as the  the ones whose metric was measured
                                         step-0 report, if
                                         there is one
infeasible, a metric missing   PRUNED    as early-stopped  as early-stopped
no objective (ran, no value)   FAIL      none              none
crashed / timeout              FAIL      none              none
============================== ========= ================= ===========================================

``FEASIBLE_ONLY`` (CMA-ES, which has no constraint support in Optuna: ``CmaEsSampler.after_trial``
warns "Constraints have been set, but CmaEsSampler will not use them"): ok is COMPLETE with its
objective; infeasible, no-objective, crashed and timed-out trials are FAIL; early-stopped trials
are PRUNED with the objective as the step-0 report (used only with ``consider_pruned_trials=True``).
No constraint is set.

``scale`` is the constraint's own (its cap when positive): unitless, like the task's violations, so
samplers that sum positive constraint values (TPE and NSGA-II rank infeasible trials by that sum)
do not add milliseconds to megabytes; GP standardises each constraint, so the scale changes nothing
there. A measured metric gives the value with its sign (slack is information for GP's constraint
model); a metric absent from ``metrics`` falls back to the recorded violation when that is positive,
and to ``0.0`` (met, slack unknown) for an ok outcome. A trial that ran but still lacks a constraint
value is a partial record, told like an early stop: GPSampler requires the same constraint keys on
every COMPLETE trial, and no value is invented for the missing one.

Never told: crash kinds, error messages, ``cost_s``, metrics beyond the constrained ones. They are
kept on the trial as the user attribute ``deploybench`` for inspection; no built-in sampler reads
user attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from deploybench import Constraint, Outcome, Status

__all__ = ["Policy", "Verdict", "constraint_values", "verdict"]


class Policy(str, Enum):
    CONSTRAINTS = "constraints"
    FEASIBLE_ONLY = "feasible_only"


@dataclass(frozen=True)
class Verdict:
    """One trial's report to Optuna: its final state, value, constraints and step-0 report."""

    state: TrialState
    value: float | None = None
    constraints: Mapping[str, float] = field(default_factory=dict)
    report: float | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def apply(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Tell ``trial`` to ``study`` (constraints and the report are set first, as Optuna expects)."""
        trial.set_user_attr("deploybench", dict(self.attrs))
        for key, value in self.constraints.items():
            trial.set_constraint(key, value)
        if self.report is not None:
            trial.report(self.report, step=0)
        if self.state is TrialState.COMPLETE:
            study.tell(trial, self.value)
        else:
            study.tell(trial, state=self.state)

    def frozen(self, params: Mapping[str, Any], distributions: Mapping[str, Any]) -> optuna.trial.FrozenTrial:
        """The same report as a finished trial, for ``study.add_trial``."""
        return optuna.trial.create_trial(
            state=self.state, value=self.value if self.state is TrialState.COMPLETE else None,
            params=dict(params), distributions=dict(distributions), user_attrs={"deploybench": dict(self.attrs)},
            intermediate_values=None if self.report is None else {0: self.report},
            constraints=dict(self.constraints) or None)


def _measured(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def constraint_values(outcome: Outcome, constraints: Sequence[Constraint]) -> dict[str, float | None]:
    """``(measured - cap) / scale`` per constraint metric; None where nothing tells the value."""
    out: dict[str, float | None] = {}
    for c in constraints:
        measured = _measured(outcome.metrics.get(c.metric))
        if measured is not None:
            out[c.metric] = (measured - c.cap) / c.effective_scale
        elif outcome.violation.get(c.metric, 0.0) > 0:
            out[c.metric] = float(outcome.violation[c.metric])
        elif outcome.status is Status.OK:
            out[c.metric] = 0.0
        else:
            out[c.metric] = None
    return out


def verdict(outcome: Outcome, constraints: Sequence[Constraint], policy: Policy) -> Verdict:
    """What Optuna is told about ``outcome`` under ``policy`` (see the module tables)."""
    values = constraint_values(outcome, constraints)
    attrs = {"status": outcome.status.value, "early_stopped": outcome.early_stopped,
             "error_kind": outcome.error.kind.value if outcome.error else None,
             "cost_s": outcome.cost_s, "constraints": values}
    objective = outcome.objective
    if outcome.failed or (objective is None and not outcome.early_stopped):
        return Verdict(TrialState.FAIL, attrs=attrs)
    known = {k: v for k, v in values.items() if v is not None}
    if policy is Policy.FEASIBLE_ONLY:
        if outcome.early_stopped:
            return Verdict(TrialState.PRUNED, report=objective, attrs=attrs)
        if outcome.status is Status.OK:
            return Verdict(TrialState.COMPLETE, value=objective, attrs=attrs)
        return Verdict(TrialState.FAIL, attrs=attrs)
    if outcome.early_stopped or len(known) < len(values):
        return Verdict(TrialState.PRUNED, constraints=known, report=objective, attrs=attrs)
    return Verdict(TrialState.COMPLETE, value=objective, constraints=known, attrs=attrs)
