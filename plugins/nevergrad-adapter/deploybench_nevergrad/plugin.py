"""The entry-point module: registers the ``nevergrad`` optimizer with deploybench."""

from __future__ import annotations

from deploybench import hookimpl

from .optimizer import NevergradOptimizer


@hookimpl
def deploybench_register_optimizers():
    return [NevergradOptimizer]
