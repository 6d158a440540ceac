"""The entry-point module: registers the Optuna optimizers with deploybench by import path, so
building the plugin manager (every command, every worker) does not import Optuna or torch."""

from __future__ import annotations

from deploybench import OptimizerSpec, hookimpl

_MODULE = "deploybench_optuna.optimizer"


@hookimpl
def deploybench_register_optimizers() -> list[OptimizerSpec]:
    return [
        OptimizerSpec("optuna", f"{_MODULE}:OptunaSampler",
                      "any Optuna sampler by name (-o optuna:GPSampler); crashes FAIL, constraints via set_constraint"),
        OptimizerSpec("optuna_gp", f"{_MODULE}:OptunaGP",
                      "Optuna GPSampler (log constrained EI); crashes FAIL, infeasible COMPLETE with constraints"),
        OptimizerSpec("optuna_cmaes", f"{_MODULE}:OptunaCmaEs",
                      "Optuna CmaEsSampler; no constraint support: infeasible and crashes FAIL (resampled)"),
    ]
