"""The entry-point module: registers the ``hebo`` optimizer with deploybench by import path, so
building the plugin manager (every command, every worker) does not import HEBO, torch or pymoo."""

from __future__ import annotations

from deploybench import OptimizerSpec, hookimpl


@hookimpl
def deploybench_register_optimizers() -> list[OptimizerSpec]:
    return [OptimizerSpec("hebo", "deploybench_hebo.optimizer:HEBOOptimizer",
                          "HEBO (NeurIPS 2020 BBO winner) via suggest/observe; penalised score, "
                          "or GeneralBO constraints with -o hebo:general")]
