"""A synthetic multi-fidelity task, so fidelity-aware optimizers are tested without hardware.

``crashy_branin_mf`` is :class:`~deploybench.tasks.synthetic.CrashyBranin` with two cheaper levels
below the full evaluation, built like the deployment levels they stand in for:

- ``sim`` (simulator): a biased model of the objective, in the style of the multi-fidelity Branin
  functions of the multi-fidelity BO literature (Kandasamy et al., "Multi-fidelity Bayesian
  Optimisation with Continuous Approximations", ICML 2017: Branin's constants b, c and t moved by a
  fixed amount at the low fidelity), so its optimum lies elsewhere; it predicts only one crash zone,
  and that one too narrowly (a static memory rule), and never measures anything;
- ``probe`` (a run cut short at a quarter of its length): the true objective plus seeded noise;
  it sees the out-of-memory zone (those crashes happen while loading) but not the divergence of
  mode C (which happens after the probe has stopped), so a probe's "feasible" can crash at full;
- ``full``: exactly ``crashy_branin``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from ..fidelity import Fidelity
from ..outcome import ErrorKind, Outcome
from ..task import EvalContext
from .synthetic import CrashyBranin, branin

__all__ = ["CrashyBraninMF", "biased_branin"]


def biased_branin(x1: float, x2: float, delta: float = 1.0) -> float:
    """Branin with b, c, t moved by ``delta`` (0 gives the standard function): b − 0.01·δ,
    c − 0.1·δ, t + 0.05·δ, a low-fidelity approximation whose optimum is displaced."""
    a = 1.0
    b = 5.1 / (4 * math.pi**2) - 0.01 * delta
    c = 5.0 / math.pi - 0.1 * delta
    r, s = 6.0, 10.0
    t = 1.0 / (8 * math.pi) + 0.05 * delta
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


class CrashyBraninMF(CrashyBranin):
    """Crashy Branin with a biased simulator and a noisy, partly crash-blind probe below full.

    Levels (cost of a full run: ``1 + 0.4·resolution`` s, as in ``crashy_branin``):

    ============ ========= ====================================== ============================ ==========================
    level        kind      objective                              crashes seen                 cost charged
    ============ ========= ====================================== ============================ ==========================
    ``sim``      simulator biased Branin (b, c, t moved)          OOM for resolution > 8 and   0.02 s
                                                                  x2 > 12 (the true zone
                                                                  starts at resolution 8)
    ``probe``    probe     true objective + N(0, 0.3²), seeded    the OOM zone (at load: 10 %  25 % of a full run (10 %
                                                                  of a full run); not mode C   for an OOM)
    ``full``     full      as ``crashy_branin``                   all                          as ``crashy_branin``
    ============ ========= ====================================== ============================ ==========================

    Constraints g1, g2 are geometry and exact at every level. The scenario's budget is
    ``default_budget_seconds = 60`` s of charged cost (about 19 full runs); ``default_budget`` caps
    the trial count at 400.
    """

    PROBE_SHARE = 0.25
    PROBE_NOISE_SD = 0.3
    SIM_COST_S = 0.02
    LOAD_SHARE = 0.10

    def __init__(self) -> None:
        super().__init__()
        self.name = "crashy_branin_mf"
        self.version = "1"
        self.default_budget = 400
        self.metadata = replace(
            self.metadata,
            description="Crashy Branin with a biased simulator level and a noisy probe level that misses a crash zone",
            reference="crashy_branin (Lysenstøen 2026) with multi-fidelity levels after Kandasamy et al. 2017",
        )
        self.declare_fidelities(
            [
                Fidelity("sim", "simulator", relative_cost=0.005, cost_model=f"{self.SIM_COST_S} s flat",
                         crashes="predicts OOM for resolution > 8 and x2 > 12 only",
                         description="biased Branin (b, c, t moved); no measurement"),
                Fidelity("probe", "probe", relative_cost=self.PROBE_SHARE,
                         cost_model="25 % of a full run; 10 % when it runs out of memory at load",
                         crashes="the OOM zone; not the divergence of mode C",
                         description="true objective plus seeded Gaussian noise (sd 0.3)"),
                Fidelity("full", "full", relative_cost=1.0, cost_model="1 + 0.4·resolution s; a crash 35 % of it",
                         crashes="all", description="crashy_branin"),
            ],
            budget_seconds=60.0,
        )

    def evaluate(self, config: Mapping[str, Any], context: EvalContext | None = None) -> Outcome:
        context = context or EvalContext()
        if context.fidelity == "sim":
            return self._simulate(config)
        if context.fidelity == "probe":
            return self._probe(config, context)
        return super().evaluate(config, context)

    def _metrics(self, x1: float, x2: float, value: float) -> dict:
        return {"neg_branin": value, "g1": x1 + x2 - 16.0, "g2": -x1 + 2.0 * x2 - 10.0}

    def _simulate(self, config: Mapping[str, Any]) -> Outcome:
        mode, x1, x2, res = config["mode"], float(config["x1"]), float(config["x2"]), int(config["resolution"])
        if res > 8 and x2 > 12:
            crash = Outcome.crashed(ErrorKind.OOM, "predicted: resolution > 8 with x2 > 12 exceeds memory",
                                    cost_s=self.SIM_COST_S)
            return crash.at_fidelity("sim", predicted=True)
        value = -(biased_branin(x1 + self.SHIFTS[mode], x2) + 0.1 * res)
        return self.judge(self._metrics(x1, x2, value), self.SIM_COST_S).at_fidelity("sim", predicted=True)

    def _probe(self, config: Mapping[str, Any], context: EvalContext) -> Outcome:
        mode, x1, x2, res = config["mode"], float(config["x1"]), float(config["x2"]), int(config["resolution"])
        full_cost = self.run_cost(res)
        if res > 7 and x2 > 12:
            crash = Outcome.crashed(ErrorKind.OOM, "resolution > 7 with x2 > 12 runs out of memory",
                                    cost_s=self.LOAD_SHARE * full_cost)
            return crash.at_fidelity("probe")
        key = self.space.key(config)
        digest = hashlib.sha256(f"{context.seed}:{context.trial}:{key}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
        value = -(branin(x1 + self.SHIFTS[mode], x2) + 0.1 * res) + float(rng.normal(0.0, self.PROBE_NOISE_SD))
        metrics = {**self._metrics(x1, x2, value), "noise_sd": self.PROBE_NOISE_SD}
        return self.judge(metrics, self.PROBE_SHARE * full_cost).at_fidelity("probe")
