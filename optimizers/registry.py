"""The entry points of the built-in optimizers, one plugin object per optimizer.

Each registers an :class:`~deploybench.OptimizerSpec` (name, import path, description), so
building the plugin manager imports neither Optuna nor scikit-learn nor SciPy: an optimizer's module
is imported only when a case runs it. One object per optimizer keeps ``-p no:tpe`` working.
"""

from __future__ import annotations

from deploybench import OptimizerSpec, hookimpl


class BuiltinOptimizer:
    """A plugin that registers one optimizer spec."""

    def __init__(self, name: str, import_path: str, description: str) -> None:
        self.spec = OptimizerSpec(name, import_path, description)

    @hookimpl
    def deploybench_register_optimizers(self) -> list[OptimizerSpec]:
        return [self.spec]

    def __repr__(self) -> str:
        return f"<built-in optimizer {self.spec.name} ({self.spec.import_path})>"


random = BuiltinOptimizer(
    "random", "deploybench_optimizers.random_search:RandomSearch",
    "uniform random search (sampling without replacement on finite spaces)")
tba = BuiltinOptimizer(
    "tba", "deploybench_optimizers.tba:TBA",
    "feasible-first simulated annealing (TBA) with blacklisting, elite restarts and snap-back")
tpe = BuiltinOptimizer(
    "tpe", "deploybench_optimizers.tpe:TPE",
    "Optuna TPE (independent, constraint-aware, crashes as worst-ranked infeasible)")
tba_tpe = BuiltinOptimizer(
    "tba_tpe", "deploybench_optimizers.tba_tpe:TBATPE",
    "TBA annealing to map the feasible region, then TPE warm-started with every result")
tba_tpe_plus = BuiltinOptimizer(
    "tba_tpe_plus", "deploybench_optimizers.tba_tpe_plus:TBATPEPlus",
    "tba_tpe with multivariate TPE and a crash/constraint model screening TPE's proposals")
cbo = BuiltinOptimizer(
    "cbo", "deploybench_optimizers.cbo:ConstrainedBO",
    "constrained BO: GP objective and constraint models, crash classifier, EI x P(feasible) x P(no crash)")
cbo_plus = BuiltinOptimizer(
    "cbo_plus", "deploybench_optimizers.cbo_plus:ConstrainedBOPlus",
    "improved constrained BO: Latin-hypercube start, warped objective GP, log EI x P(feasible) x P(no crash) "
    "over probably-feasible candidates, local refinement of the incumbent")
scout = BuiltinOptimizer(
    "scout", "deploybench_optimizers.scout:Scout",
    "AutoScout-style: MCTS over structure, coordinate search with momentum, UCB1 between them, fidelity-adaptive")
tpe_hyperband = BuiltinOptimizer(
    "tpe_hyperband", "deploybench_optimizers.tpe_hyperband:TPEHyperband",
    "Optuna TPE with the Hyperband pruner over fidelity levels (probe, then full); plain TPE on single-fidelity tasks")
