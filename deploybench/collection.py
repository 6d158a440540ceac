"""Collection: the cases of a run (task × optimizer variant × seed) from the command line's names.

Cases get node ids such as ``crashy_branin[analytic]::tba[seed=3]``; ``-k`` filters them. Every name is
checked here, before any work: an unknown task, target, optimizer or parameter, or a parameter value of
the wrong type, is a :class:`~deploybench.plugins.UsageError` naming what is allowed and the closest
match. ``--opt-param`` values equal to an optimizer's defaults make the plain case, not a variant.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from .identity import variant_name
from .keyword import KeywordError, compile_keyword
from .plugins import DeployBenchPluginManager
from .errors import UsageError, unknown_name_message
from .runner import Case

__all__ = ["collect", "parse_task_arg", "parse_optimizer_arg", "check_optimizer_params"]

_TASK_ARG = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<target>[^\]]+)\])?$")


def parse_task_arg(arg: str) -> tuple[str, str | None]:
    """``edge_tight`` → (edge_tight, None); ``edge_tight[cpu]`` → (edge_tight, cpu)."""
    m = _TASK_ARG.match(arg.strip())
    if not m:
        raise UsageError(f"cannot read task {arg!r}; write NAME or NAME[TARGET], e.g. edge_tight[cpu]")
    return m.group("name"), m.group("target")


def _task_label(name: str, target: str, n_targets: int) -> str:
    if n_targets == 1 and "/" not in target:
        return name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target).stem if ("/" in target or target.endswith(".jsonl")) else target)
    return f"{name}@{safe}"


def collect(
    pm: DeployBenchPluginManager,
    *,
    tasks: Sequence[str] = (),
    optimizers: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    budget: int | None = None,
    budget_seconds: float | None = None,
    target: str | None = None,
    keyword: str = "",
    optimizer_params: dict[str, dict[str, Any]] | None = None,
    task_params: dict[str, dict[str, Any]] | None = None,
) -> list[Case]:
    """Build the cases. Unknown names raise :class:`UsageError` with the known names and the
    closest match. With no tasks, every non-live task on its default target is collected; with no
    optimizers, every registered optimizer. ``task_params`` (task name → parameter → value, from
    ``--task-param``) are checked against what each task declares; values other than the defaults
    make their own task label (``edge_tight@live[device_profile=edge]``), folder and node id."""
    specs = pm.task_specs()
    optimizer_params = optimizer_params or {}
    task_params = task_params or {}
    task_args = list(tasks) or [name for name, s in specs.items() if s.kind != "live"]
    selected_tasks = [parse_task_arg(arg)[0] for arg in task_args]
    for name in task_params:
        if name not in selected_tasks:
            raise UsageError(f"--task-param names task {name!r}, which is not selected; selected: "
                             f"{', '.join(dict.fromkeys(selected_tasks))}")
    variants = _optimizer_variants(pm, optimizers, optimizer_params)
    try:
        match = compile_keyword(keyword)
    except KeywordError as exc:
        raise UsageError(str(exc)) from exc
    if budget is not None and budget < 1:
        raise UsageError(f"--budget must be a positive number of trials, got {budget}")
    if budget_seconds is not None and budget_seconds <= 0:
        raise UsageError(f"--budget-seconds must be positive, got {budget_seconds}")

    cases: list[Case] = []
    for arg in task_args:
        t = _task_of(specs, arg, target, task_params)
        n_budget = budget if budget is not None else t.budget
        n_seconds = budget_seconds if budget_seconds is not None else t.budget_seconds
        for opt, opt_params in variants:
            for seed in seeds:
                case = Case(task=t.name, target=t.target, task_label=t.label, optimizer=opt, seed=int(seed),
                            budget=n_budget, budget_seconds=n_seconds, optimizer_params=opt_params, kind=t.kind,
                            task_params=t.params)
                if match(case.node_id):
                    cases.append(case)
    return cases



def _optimizer_variants(pm: DeployBenchPluginManager, optimizers: Sequence[str],
                        optimizer_params: dict[str, dict[str, Any]]) -> list[tuple[str, tuple]]:
    """(optimizer, checked non-default parameters) of each selected variant, each once. Only the
    selected optimizers are imported; with none selected, every one that imports (one that cannot is
    reported as a broken plugin in the header)."""
    selections = [parse_optimizer_arg(arg) for arg in optimizers]
    classes = ({name: pm.get_optimizer_class(name) for name, _ in selections} if selections
               else pm.optimizer_classes())
    selections = selections or [(name, None) for name in sorted(classes)]
    opt_names = list(dict.fromkeys(name for name, _ in selections))
    for name in optimizer_params:
        if name not in opt_names:
            raise UsageError(f"--opt-param names optimizer {name!r}, which is not selected; selected: {', '.join(opt_names)}")
    variants: list[tuple[str, tuple]] = []
    for name, value in selections:
        params = dict(optimizer_params.get(name, {}))
        if value is not None:
            params[_shorthand_param(name, classes[name], value)] = value
        checked = tuple(sorted(check_optimizer_params(name, classes[name], params).items()))
        if (name, checked) not in variants:
            variants.append((name, checked))
    return variants


class _CollectedTask(NamedTuple):
    name: str
    target: str
    label: str
    kind: str
    budget: int
    budget_seconds: float | None
    params: tuple[tuple[str, Any], ...]


def _task_of(specs: dict, arg: str, target: str | None, task_params: dict[str, dict[str, Any]]) -> _CollectedTask:
    """One ``--task`` argument checked, and its task built once for its defaults and kind."""
    name, arg_target = parse_task_arg(arg)
    if name not in specs:
        raise UsageError(unknown_name_message("task", name, specs))
    spec = specs[name]
    try:
        params = spec.check_params(task_params.get(name, {}))
    except ValueError as exc:
        raise UsageError(f"--task-param: {exc}") from exc
    chosen = arg_target or target or spec.default_target
    if chosen not in spec.targets and not (spec.accepts_paths and (os.sep in chosen or chosen.endswith((".jsonl", ".gz")))):
        also = " (or the path of a recorded table, such as my_device.jsonl.gz)" if spec.accepts_paths else ""
        raise UsageError(unknown_name_message("target", chosen, spec.targets, where=f" for task {name!r}", also=also))
    try:
        task = spec.build(chosen, params)
    except UsageError:
        raise
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"task {name}[{chosen}]: {exc}") from exc
    try:
        label = variant_name(_task_label(name, chosen, len(spec.targets)), params)
        return _CollectedTask(name, chosen, label, task.metadata.kind, task.default_budget,
                              task.default_budget_seconds, tuple(sorted(params.items())))
    finally:
        task.close()

def parse_optimizer_arg(arg: str) -> tuple[str, str | None]:
    """``"tba"`` -> ("tba", None); ``"optuna:GPSampler"`` -> ("optuna", "GPSampler"): the value of
    the parameter the optimizer names as its ``shorthand_param``."""
    name, sep, value = arg.partition(":")
    if sep and not value:
        raise UsageError(f"--optimizer {arg!r}: nothing after ':' (write NAME or NAME:VALUE)")
    return name, (value if sep else None)


def _shorthand_param(name: str, cls: type, value: str) -> str:
    param = getattr(cls, "shorthand_param", None)
    if not param:
        raise UsageError(f"--optimizer {name}:{value}: optimizer {name!r} takes no ':' value (only optimizers that "
                         f"declare a shorthand parameter do); set its parameters with --opt-param {name}.PARAM=VALUE")
    return param


def check_optimizer_params(name: str, cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``--opt-param`` values against the optimizer's constructor defaults before any work:
    unknown names and values of the wrong type are usage errors. Returns the parameters that differ
    from the defaults (so ``tba.T_init=<its default>`` is the plain ``tba`` case, not a variant), with
    integers given for float parameters turned into floats (``1`` and ``1.0`` are one variant)."""
    allowed = cls._param_names()
    defaults = _param_defaults(cls)
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key not in allowed:
            raise UsageError(unknown_name_message("parameter", key, allowed, where=f" of optimizer {name!r}"))
        default = defaults.get(key, inspect.Parameter.empty)
        value = _coerce_param(name, key, value, default)
        if default is inspect.Parameter.empty or value != default or type(value) is not type(default):
            out[key] = value
    validate = getattr(cls, "validate_params", None)
    if validate is not None:
        full = {k: defaults[k] for k in allowed if k in defaults}
        full.update(params)
        try:
            validate(full)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"optimizer {name!r}: {exc}") from exc
    return out


def _param_defaults(cls: type) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in parameters:
            if p.default is not inspect.Parameter.empty:
                defaults[p.name] = p.default
    return defaults


def _coerce_param(optimizer: str, key: str, value: Any, default: Any) -> Any:
    """The value in the default's type where that is unambiguous; a usage error where it cannot be."""
    def bad(expected: str) -> UsageError:
        return UsageError(f"--opt-param {optimizer}.{key}={json.dumps(value)}: expected {expected} "
                          f"(the default is {default!r})")

    if default is inspect.Parameter.empty or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if isinstance(value, (int, float, bool)):
            return json.dumps(value)  # `mode=1` was read as JSON; the parameter is text
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, (tuple, list)):
        if not isinstance(value, list):
            raise bad("a JSON list such as [1, 2]")
        return value
    if isinstance(default, dict) and not isinstance(value, dict):
        raise bad("a JSON object")
    return value
