"""The entry-point module: registers the ``nevergrad`` optimizer with deploybench by import path, so
building the plugin manager (every command, every worker) does not import the library."""

from __future__ import annotations

from deploybench import OptimizerSpec, hookimpl


@hookimpl
def deploybench_register_optimizers() -> list[OptimizerSpec]:
    return [OptimizerSpec("nevergrad", "deploybench_nevergrad.optimizer:NevergradOptimizer",
                          "nevergrad ask/tell (NGOpt by default); crashes get worst loss + margin, infeasible uses constraint_violation")]
