"""The entry-point module: registers the ``smac`` optimizer with deploybench by import path, so
building the plugin manager (every command, every worker) does not import the library."""

from __future__ import annotations

from deploybench import OptimizerSpec, hookimpl


@hookimpl
def deploybench_register_optimizers() -> list[OptimizerSpec]:
    return [OptimizerSpec("smac", "deploybench_smac.optimizer:SMACOptimizer",
                          "SMAC3 random-forest BO (HPO facade) via ask/tell; crash cost for crashes, penalised cost for infeasible")]
