"""The hook catalogue: every way a plugin extends DeployBench.

A plugin is a module (or object) with functions named like the hooks below and decorated with
``@deploybench.hookimpl``. Plugins are found through the ``deploybench`` entry-point group, loaded
with ``-p module`` or blocked with ``-p no:name``. The built-in tasks and optimizers register
through these same hooks.

Example, a plugin that adds an optimizer::

    from deploybench import hookimpl

    @hookimpl
    def deploybench_register_optimizers():
        return [MyOptimizer]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from .optimizer import Optimizer
    from .specs import OptimizerSpec
    from .task import TaskSpec

PROJECT_NAME = "deploybench"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- registration ------------------------------------------------------------------------------------
@hookspec
def deploybench_register_tasks() -> "list[TaskSpec]":
    """Return the :class:`~deploybench.task.TaskSpec` objects this plugin offers.

    Task names must be unique across plugins; a clash is reported as a usage error naming both plugins.
    A task's factory runs only when the task is used, so keep heavy imports inside it.
    """


@hookspec
def deploybench_register_optimizers() -> "list[type[Optimizer] | OptimizerSpec]":
    """Return optimizer classes (subclasses of :class:`~deploybench.optimizer.Optimizer` with a ``name``),
    or :class:`~deploybench.specs.OptimizerSpec` objects naming a class by import path.

    Prefer a spec when the optimizer's module imports a heavy library: every command and every worker
    calls this hook, and a spec's module is imported only when a case runs that optimizer. Names must
    be unique across plugins (a clash is a usage error naming both) and usable as folder names
    (letters, digits, ``_ . + -``); an invalid name makes its plugin broken.
    """


@hookspec
def deploybench_register_executors() -> "list[Any]":
    """Return executors: objects with a ``name`` (unique across plugins, like task names) and
    ``run(cases, options, *, pm, workers, on_trial, on_case_start, session) -> iterator of CaseResult``.

    The executor runs the cases (in this process, in worker processes, on a cluster) and yields each
    case's result as it finishes. Each case writes its own JSONL file through
    :func:`deploybench.runner.run_case` (called wherever the case runs, with ``options``), so every
    executor fills the same results store. ``session.cli_options`` holds options the plugin added
    through :func:`deploybench_addoption`; ``on_trial`` / ``on_case_start`` stream progress and may be
    ignored by executors that run cases elsewhere. An executor may also define
    ``describe(cases, workers, *, session) -> str``: the line the run header prints about it.
    """


@hookspec
def deploybench_leaderboard_metrics() -> "list[Any]":
    """Return extra leaderboard columns: objects with ``name`` (the column header, unique),
    ``description`` (printed under each table) and ``compute(case_summaries) -> float | None``.

    ``compute`` is called once per table row (one task × signature × budget, one optimizer) with
    that row's :class:`deploybench.scoring.CaseSummary` objects, one per seed: counts
    (``n_trials``, ``n_ok``, ``n_crashed``, ``error_kinds``, ...), ``best``, ``best_config``,
    ``first_feasible_trial``, ``total_cost``, and the per-trial ``best_curve`` / ``cost_curve``.
    Return ``None`` where the metric is undefined. A metric that raises is reported, not fatal.
    The built-in columns are written against the same protocol; a metric may also define ``key``,
    ``header(context)``, ``describe(context)``, ``format(value)`` and ``applies(cases)`` (leave the column
    out of tables it does not apply to), and read the table's context
    (the task's penalty, known optimum, ...) from ``cases.context`` (see
    :mod:`deploybench.scoring.columns`).

    Example::

        class CrashShare:
            name = "crash share"
            description = "share of trials that crashed"

            def compute(self, cases):
                n = sum(c.n_trials for c in cases)
                return sum(c.n_crashed for c in cases) / n if n else None

        @hookimpl
        def deploybench_leaderboard_metrics():
            return [CrashShare()]
    """


# -- command line ------------------------------------------------------------------------------------
@hookspec
def deploybench_addoption(parser: "argparse.ArgumentParser", command: str) -> None:
    """Add options to ``deploybench run`` (``command`` ``"run"``) and ``deploybench record`` (``"record"``:
    an executor plugin that can measure a recording, see ``measurement_pool`` on
    :class:`deploybench.executors.Executor`, takes its options there too). Called once, before the
    command line is parsed; an implementation may leave ``command`` out of its signature and add the
    same options to both.

    Read them back in :func:`deploybench_sessionstart` from ``session.options``.
    """


# -- session observation ------------------------------------------------------------------------------
@hookspec
def deploybench_sessionstart(session: Any) -> None:
    """Called after collection, before the first case runs."""


@hookspec
def deploybench_case_start(case: Any) -> None:
    """Called when a case (task × optimizer × seed) starts, in the process that runs it."""


@hookspec
def deploybench_trial_end(case: Any, record: dict) -> None:
    """Called after each trial's record has been written (``record`` is the JSON line as a dict)."""


@hookspec
def deploybench_case_finish(case: Any, result: Any) -> None:
    """Called when a case ends, completed or errored, with its :class:`~deploybench.runner.CaseResult`."""


@hookspec
def deploybench_sessionfinish(session: Any, exitstatus: int) -> None:
    """Called once after all cases, with the exit status the command will return."""


# -- provenance ----------------------------------------------------------------------------------------
@hookspec
def deploybench_machine_info(info: dict) -> None:
    """Add or update entries of the machine description written to the run header and manifest
    (GPU model, driver, clocks, ...). Mutate ``info`` in place."""
