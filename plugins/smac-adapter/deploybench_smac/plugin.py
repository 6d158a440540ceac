"""The entry-point module: registers the ``smac`` optimizer with deploybench."""

from __future__ import annotations

from deploybench import hookimpl

from .optimizer import SMACOptimizer


@hookimpl
def deploybench_register_optimizers():
    return [SMACOptimizer]
