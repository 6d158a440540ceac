"""Ax (Meta's adaptive experimentation platform, on BoTorch) behind deploybench's ask/tell contract."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome

from ._quiet import quiet_ax, quiet_import
from .metrics import MetricNames
from .space import SpaceTranslation

with quiet_import():
    from ax.api import Client

__all__ = ["AxOptimizer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    """The configuration handed out by the last ask and the Ax trial it belongs to (``None``: a
    configuration Ax did not generate, attached to the experiment when it is told)."""

    key: str
    index: int | None


class AxOptimizer(Optimizer):
    """Ax's ``Client`` with its default generation strategy, driven by ask/tell.

    **The strategy** is Ax's own choice, not configured here: the centre of the space, Sobol points
    up to 5 initialisation trials (failed ones do not count, and at least 2 must be completed with
    data), then Ax's modular BoTorch model ("MBM": a GP per metric, mixed or discrete optimisation for
    choice and integer parameters, qLogNEI-style acquisition that weighs the objective by the
    modelled probability of meeting the outcome constraints). Seeded with ``Client(random_seed=seed)``.

    **What Ax is told** (the Client API as Ax documents it: ``configure_optimization``,
    ``complete_trial``, ``mark_trial_failed``, ``attach_data`` + ``mark_trial_early_stopped``,
    ``mark_trial_abandoned``):

    - the objective metric (``"accuracy"``, ``"-latency"`` for a minimised one) and every constraint as an
      absolute outcome constraint on its measured metric (``"latency_p95_ms <= 20.0"``); metric names
      Ax's expression parser would reject are renamed (:mod:`deploybench_ax.metrics`);
    - ok and infeasible trials: ``complete_trial`` with the measured objective and constraint metrics
      (each a mean with unknown noise, which Ax infers); a metric a trial did not produce is left out;
    - crashed and timed-out trials (every error kind: oom, unsupported, environment, timeout, runtime):
      ``mark_trial_failed`` with the kind and message as the reason. Ax fits nothing to a failed
      trial: it learns nothing about where crashes are (no penalty value is invented);
    - early-stopped trials (infeasible, cut short): whatever objective or constraint metrics they
      measured with ``attach_data``, then ``mark_trial_early_stopped`` (Ax fits early-stopped data
      and never re-suggests the arm); one that measured none of them (the deployment tables' early
      stops carry only an estimate of the latency) is ``mark_trial_abandoned``, as Ax's docstring for
      early stopping says for a trial without data: Ax then keeps it as a pending point, so it is not
      re-suggested, and learns nothing else from it.

    What it is **not** told: ``cost_s`` (Ax's default strategy is not cost-aware), the unitless
    violation (it models each constraint metric itself), the other metrics a trial records, the
    crash kinds beyond the failure reason text, and the conditions (see below).

    **Conditional spaces**: the union of all parameters goes to Ax; the parameters inactive under the
    values Ax chose are dropped from the config (:mod:`deploybench_ax.space` says why not Ax's own
    hierarchical spaces). Two Ax suggestions that differ only in inactive parameters are therefore the
    same deploybench configuration.

    **A configuration asked twice**: Ax deduplicates arms of running, completed, early-stopped and
    abandoned trials, but "FAILED trials may be re-suggested" (Ax's docstring), and the union above
    collapses distinct arms. When Ax suggests a configuration that was measured already, no trial is
    spent: that Ax trial is answered from memory (the same data for one that ran; ``ABANDONED``, Ax's
    "do not re-suggest", for one that crashed) and Ax is asked again, up to ``duplicate_retries``
    times. If Ax still repeats itself, or cannot generate (an exception, or its initialisation waits
    for data because early stops do not count as completed), the ask returns a seeded random
    configuration not measured yet, which is attached to Ax's experiment (``attach_trial``) when it is
    told; :attr:`fallbacks` lists each such ask with its reason.

    Ax and torch run with ``torch_threads`` intra-op threads (default 1) and Ax's logging and
    warnings silenced, both only during the calls into Ax (:mod:`deploybench_ax._quiet`).

    **Speed**: an ask in the Sobol phase takes ~0.1 s; once the GP takes over every ask refits and
    optimises the acquisition function (Ax's defaults: 20 restarts over 1024 raw samples per
    fixed combination of the discrete parameters). Measured on this project's shared 2-core machine
    (``OMP_NUM_THREADS=1``): see the package README.

    Parameters
    ----------
    duplicate_retries:
        How many times an ask answers an already-measured suggestion from memory and asks Ax again
        before it falls back to a random unmeasured configuration.
    torch_threads:
        Torch intra-op threads while Ax fits and optimises (restored afterwards).
    """

    name = "ax"
    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=True, deterministic=True)

    def __init__(self, context: OptimizerContext, *, duplicate_retries: int = 3, torch_threads: int = 1):
        super().__init__(context)
        self.duplicate_retries = duplicate_retries
        self.torch_threads = torch_threads
        if not isinstance(duplicate_retries, int) or duplicate_retries < 0:
            raise ValueError(f"duplicate_retries must be an integer >= 0, got {duplicate_retries!r}")
        if not isinstance(torch_threads, int) or torch_threads < 1:
            raise ValueError(f"torch_threads must be an integer >= 1, got {torch_threads!r}")

        self._translation = SpaceTranslation(self.space)
        self._names = MetricNames(self.objective, self.constraints)
        self._fill_rng = self.make_rng(1)      # inactive values of configurations Ax did not generate
        self._fallback_rng = self.make_rng(2)  # configurations when Ax cannot give a new one
        self._measured: dict[str, Outcome] = {}
        self._pending: _Pending | None = None
        #: one line per ask that did not return Ax's suggestion, with the reason
        self.fallbacks: list[str] = []
        #: Ax suggestions of already-measured configurations, answered from memory
        self.repeats_answered = 0
        with quiet_ax(self.torch_threads):
            self.client = Client(random_seed=self.seed)
            self.client.configure_experiment(parameters=self._translation.parameters, name="deploybench")
            self.client.configure_optimization(objective=self._names.objective_str,
                                               outcome_constraints=self._names.constraint_strs or None)

    # -- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> dict[str, Any]:
        with quiet_ax(self.torch_threads):
            if self._pending is not None and self._pending.index is not None:
                # the last suggestion was never told (the case ended between ask and tell)
                self.client.mark_trial_abandoned(self._pending.index)
            self._pending = None
            reason = f"{self.duplicate_retries + 1} suggestions in a row were measured already"
            for _ in range(self.duplicate_retries + 1):
                try:
                    trials = self.client.get_next_trials(max_trials=1)
                except Exception as exc:  # noqa: BLE001 - any failure to generate: fall back, keep the case
                    reason = f"Ax could not generate: {type(exc).__name__}: {exc}"
                    break
                if not trials:
                    reason = "Ax generated no trial"
                    break
                index, parameters = next(iter(trials.items()))
                config = self._translation.to_config(parameters)
                key = self.space.key(config)
                known = self._measured.get(key)
                if known is None:
                    self._pending = _Pending(key, index)
                    return config
                self._report(index, known, repeat=True)
                self.repeats_answered += 1
        self.fallbacks.append(reason)
        log.debug("ax: ask %d falls back to a random configuration: %s", len(self._measured) + 1, reason)
        config = self._fallback_config()
        self._pending = _Pending(self.space.key(config), None)
        return config

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        key = self.space.key(config)
        pending, self._pending = self._pending, None
        with quiet_ax(self.torch_threads):
            if pending is not None and pending.key == key and pending.index is not None:
                index = pending.index
            else:  # a configuration Ax did not generate (a fallback, or one the caller chose)
                if pending is not None and pending.index is not None:
                    self.client.mark_trial_abandoned(pending.index)
                index = self.client.attach_trial(self._translation.to_parameters(config, self._fill_rng))
            self._report(index, outcome)
        self._measured[key] = outcome

    # -- helpers ---------------------------------------------------------------------------------------
    def _report(self, index: int, outcome: Outcome, *, repeat: bool = False) -> None:
        """Tell Ax the outcome of trial ``index`` (see the class docstring for the mapping)."""
        if outcome.failed:
            if repeat:  # a known crash suggested again: "ABANDONED trials are not able to be re-suggested"
                self.client.mark_trial_abandoned(index)
            else:
                error = outcome.error
                reason = f"{error.kind.value}: {error.message}" if error is not None else outcome.status.value
                self.client.mark_trial_failed(index, failed_reason=reason)
            return
        data = self._names.raw_data(outcome)
        if not data:  # nothing Ax models was measured
            self.client.mark_trial_abandoned(index)
        elif outcome.early_stopped:
            self.client.attach_data(index, raw_data=data)
            self.client.mark_trial_early_stopped(index)
        else:
            self.client.complete_trial(index, raw_data=data)

    def _fallback_config(self, tries: int = 1000) -> dict[str, Any]:
        """A seeded random configuration not measured yet (any configuration once none is left)."""
        config = self.space.sample(self._fallback_rng)
        for _ in range(tries):
            if self.space.key(config) not in self._measured:
                break
            config = self.space.sample(self._fallback_rng)
        return config
