"""The entry-point module: registers the ``ax`` optimizer with deploybench by import path, so
building the plugin manager (every command, every worker) does not import Ax, torch or BoTorch."""

from __future__ import annotations

from deploybench import OptimizerSpec, hookimpl


@hookimpl
def deploybench_register_optimizers() -> list[OptimizerSpec]:
    return [OptimizerSpec("ax", "deploybench_ax.optimizer:AxOptimizer",
                          "Ax Client, default generation strategy (Sobol, then BoTorch qLogNEI with outcome "
                          "constraints); crashes as failed trials")]
