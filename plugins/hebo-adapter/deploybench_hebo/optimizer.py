"""HEBO (Huawei's Heteroscedastic Evolutionary Bayesian Optimisation) behind deploybench's ask/tell
contract."""

from __future__ import annotations

import contextlib
import functools
import io
import random
import warnings
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from deploybench import Optimizer, OptimizerContext, OptimizerTags, Outcome

from .scores import general_outputs, penalised_scores
from .space import DesignTranslation


@contextlib.contextmanager
def _keep_torch_threads() -> Iterator[None]:
    """``hebo.optimizers.hebo`` calls ``torch.set_num_threads(1)`` when it is imported; undo that for
    the rest of the process (the adapter sets one thread around its own calls instead)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


with _keep_torch_threads(), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # an invalid escape in a HEBO docstring; torch.jit deprecations
    import gpytorch.settings
    from hebo.acq_optimizers import evolution_optimizer
    from hebo.design_space.design_space import DesignSpace
    from hebo.optimizers.general import GeneralBO
    from hebo.optimizers.hebo import HEBO

__all__ = ["HEBOOptimizer", "CONSTRAINT_HANDLING"]

#: ``constraint_handling`` values: HEBO proper with a penalised objective, or HEBO's GeneralBO
CONSTRAINT_HANDLING = ("penalty", "general")
#: random draws tried when looking for a configuration not measured yet
_UNSEEN_TRIES = 200


@contextlib.contextmanager
def _hebo_call(seed: int) -> Iterator[None]:
    """Run one HEBO call reproducibly, on one thread, and without side effects on the process.

    HEBO draws from the global numpy and torch generators (Sobol scrambling of the evolution's
    start population, ``np.random.choice`` among candidates) and pymoo 0.6.2 seeds its algorithms'
    generator from OS entropy unless ``minimize`` gets a ``seed``, which HEBO never passes. So the
    call gets: the global numpy, ``random`` and torch generators seeded from ``seed`` (their states
    restored afterwards); HEBO's reference to pymoo's ``minimize`` bound to ``seed`` (restored
    afterwards: not thread-safe, two HEBO adapters must not ask concurrently in one process;
    deploybench runs parallel cases in separate processes); ``torch.set_num_threads(1)`` (the GP
    fits are tiny; more threads only add hand-offs, and HEBO itself sets 1 on import); gpytorch's
    global ``cholesky_jitter`` restored (HEBO's GP raises it on failed Cholesky factorizations
    and never resets it); HEBO's prints (``jitter = ...``) and warnings swallowed.
    """
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    threads = torch.get_num_threads()
    minimize = evolution_optimizer.minimize
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    evolution_optimizer.minimize = functools.partial(minimize, seed=seed)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                gpytorch.settings.cholesky_jitter():
            warnings.simplefilter("ignore")
            yield
    finally:
        evolution_optimizer.minimize = minimize
        torch.set_num_threads(threads)
        torch.set_rng_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)


class HEBOOptimizer(Optimizer):
    """HEBO 0.3.x driven by ask/tell: ``suggest(n_suggestions=1)`` per ask, ``observe`` per tell.

    **What HEBO is told.** The search space as a HEBO ``DesignSpace`` (the union of every
    parameter; see :mod:`deploybench_hebo.space`), and per trial finite numbers computed from the
    outcome (:mod:`deploybench_hebo.scores`), recomputed for the whole history after every tell
    (the adapter writes the re-imputed values into HEBO's ``y``):

    - ``constraint_handling="penalty"`` (default): the ``HEBO`` class, the NeurIPS 2020 winner
      (GP with input warping, power-transformed outputs, the MACE acquisition ensemble optimised
      by NSGA-II, Sobol initial design). It takes no constraints (``support_constraint = False``;
      HEBO issue #65 asks how to add them to this class and is unanswered), so it minimises one
      penalised score: the objective when feasible, worst feasible + spread × violation when
      infeasible, worst + spread when crashed or timed out.
    - ``constraint_handling="general"``: ``GeneralBO(num_obj=1, num_constr=k)``, the optimiser
      HEBO's documentation gives for constrained problems (``mo_constrained``): one GP per output,
      LCB on the objective and on each constraint ``(measured - cap) / scale <= 0``, optimised by
      a constrained GA. Missing values (crashes, early stops) are imputed pessimistically.

    **Not told:** which parameters are inactive (HEBO's design space has no conditions: inactive
    parameters are free dimensions to it and dropped from the config), crash kinds and messages,
    ``cost_s``, metrics other than the objective and the constraint metrics, fidelities.

    **Crashes.** HEBO documents no handling of failed evaluations; its ``observe`` drops non-finite
    values silently, which would leave crashing regions attractive (and re-proposable). The adapter
    tells a crash the worst score seen plus the spread, re-imputed as the worst grows.

    **Duplicates.** HEBO avoids proposing a row it has observed, but two rows can be one config
    (they differ in inactive parameters, or round to the same integers). When a suggestion is a
    configuration already measured, its result is known: the adapter observes that row with the
    known value (no evaluation spent) and asks HEBO again, up to ``duplicate_retries`` times, then
    draws a seeded random configuration not measured yet (a repeat only when a finite space is
    exhausted).

    **Seeds and threads.** Each HEBO call runs under :func:`_hebo_call`: global generators seeded
    from the case seed and restored, pymoo seeded, one torch thread. Same seed, same suggestions.

    **Cost.** HEBO's acquisition search is fixed at 100 generations × 100 candidates of pymoo's
    mixed-variable NSGA-II, which dominates an ask. Measured median ask+tell (2 seeds, budget 100, on
    the project's busy 2-core VM): crashy_branin 5.5 s at trial 25 and 4.6 s at trial 100, edge_wide
    6.0 s and 6.6 s; a 25-trial edge_tight case spends about 2 minutes in ask+tell. GeneralBO
    (``"general"``) costs more per ask (see the README).

    Parameters
    ----------
    n_initial:
        Quasi-random (Sobol, or GeneralBO's uniform) suggestions before the first model fit; ``None``
        keeps HEBO's rule, one more than the number of searched parameters (HEBO uses at least 2).
    constraint_handling:
        ``"penalty"`` (the HEBO class, penalised score) or ``"general"`` (HEBO's GeneralBO, each
        constraint a modelled output). Also set by ``-o hebo:general``.
    duplicate_retries:
        How often a suggestion that repeats a measured configuration is fed back with its known
        value and HEBO asked again before a random unmeasured configuration is used.
    """

    name = "hebo"
    description = "HEBO (NeurIPS 2020 BBO winner) via suggest/observe; penalised score or GeneralBO constraints"
    tags = OptimizerTags(conditional_spaces=True, batch_asks=False, uses_constraints=True, deterministic=True)
    shorthand_param = "constraint_handling"

    def __init__(self, context: OptimizerContext, *, n_initial: int | None = None,
                 constraint_handling: str = "penalty", duplicate_retries: int = 2):
        super().__init__(context)
        self.n_initial = n_initial
        self.constraint_handling = constraint_handling
        self.duplicate_retries = duplicate_retries
        if constraint_handling not in CONSTRAINT_HANDLING:
            raise ValueError(f"hebo: constraint_handling must be one of {', '.join(map(repr, CONSTRAINT_HANDLING))}, "
                             f"got {constraint_handling!r}")
        if n_initial is not None and (isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1):
            raise ValueError(f"hebo: n_initial must be None or an integer >= 1, got {n_initial!r}")
        if isinstance(duplicate_retries, bool) or not isinstance(duplicate_retries, int) or duplicate_retries < 0:
            raise ValueError(f"hebo: duplicate_retries must be an integer >= 0, got {duplicate_retries!r}")

        self._translation = DesignTranslation(self.space)
        self._call_seeds = self.make_rng(1)
        self._fallback_rng = self.make_rng(2)
        self._hebo: HEBO | GeneralBO | None = None
        if self._translation.names:  # a space with nothing to search needs no HEBO
            design = DesignSpace().parse(self._translation.spec)
            if constraint_handling == "penalty":
                scramble_seed = int(self.make_rng(0).integers(2**31))
                self._hebo = HEBO(design, rand_sample=n_initial, scramble_seed=scramble_seed)
            else:
                self._hebo = GeneralBO(design, num_obj=1, num_constr=len(self.constraints), rand_sample=n_initial)
        self._outcomes: list[Outcome] = []
        self._first_index: dict[str, int] = {}  # config key -> index of its first outcome
        self._sources: list[int] = []  # per observed HEBO row: the outcome whose value it carries
        self._pending: tuple[str, dict[str, Any]] | None = None

    # -- ask / tell ----------------------------------------------------------------------------------
    def ask(self) -> dict[str, Any]:
        if self._hebo is None:
            return self._translation.to_config({})
        config: dict[str, Any] = {}
        for attempt in range(1 + self.duplicate_retries):
            row = self._suggest()
            config = self._translation.to_config(row)
            key = self.space.key(config)
            if key not in self._first_index:
                self._pending = (key, row)
                return config
            # a configuration already measured: its value is known, so HEBO learns this row for free
            self._observe(row, self._first_index[key])
        unseen = self._unseen_sample()
        return config if unseen is None else unseen

    def tell(self, config: Mapping[str, Any], outcome: Outcome) -> None:
        key = self.space.key(config)
        if self._pending is not None and self._pending[0] == key:
            row = self._pending[1]
        else:  # a configuration HEBO did not propose (the random fallback)
            row = self._translation.to_row(config)
        self._pending = None
        index = len(self._outcomes)
        self._outcomes.append(outcome)
        self._first_index.setdefault(key, index)
        if self._hebo is not None:
            self._observe(row, index)

    # -- HEBO calls ----------------------------------------------------------------------------------
    def _suggest(self) -> dict[str, Any]:
        assert self._hebo is not None
        with _hebo_call(int(self._call_seeds.integers(2**31))):
            frame = self._hebo.suggest(n_suggestions=1)
        return {name: frame.iloc[0][name] for name in self._translation.names}

    def _values(self) -> np.ndarray:
        """What HEBO is told for every observed row, under the current references."""
        if self.constraint_handling == "penalty":
            per_outcome = np.asarray(penalised_scores(self._outcomes, self.objective.sign)).reshape(-1, 1)
        else:
            per_outcome = general_outputs(self._outcomes, self.objective.sign, self.constraints)
        return per_outcome[self._sources]

    def _observe(self, row: Mapping[str, Any], source: int) -> None:
        """Observe ``row`` with the value of outcome ``source``, then re-impute every earlier row."""
        assert self._hebo is not None
        self._sources.append(source)
        values = self._values()
        frame = pd.DataFrame([dict(row)], columns=self._hebo.space.para_names)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandas: concat with HEBO's empty initial frame
            self._hebo.observe(frame, values[-1:].copy())
        if self._hebo.y.shape != values.shape:  # pragma: no cover - every value is finite
            raise RuntimeError(f"hebo: HEBO holds {self._hebo.y.shape[0]} observations, the adapter {values.shape[0]}")
        self._hebo.y = values

    def _unseen_sample(self) -> dict[str, Any] | None:
        """A seeded random configuration not measured yet, or None when none was found."""
        for _ in range(_UNSEEN_TRIES):
            config = self.space.sample(self._fallback_rng)
            if self.space.key(config) not in self._first_index:
                return config
        return None
