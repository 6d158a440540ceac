"""Finding and building an Optuna sampler from a name, an import path and JSON keyword arguments."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

import optuna
from optuna.samplers import BaseSampler, CmaEsSampler, GPSampler, QMCSampler

from deploybench.errors import unknown_name_message
from deploybench.errors import did_you_mean
from deploybench.specs import load_object

from .policy import Policy

__all__ = ["build_sampler", "known_samplers", "policy_for", "resolve_sampler"]

#: samplers whose (current, not deprecated) ``warn_independent_sampling`` logs a warning per trial for
#: every parameter they draw with their independent sampler (conditional ones, CMA-ES's categoricals)
_QUIET_INDEPENDENT = (GPSampler, CmaEsSampler, QMCSampler)


def known_samplers() -> list[str]:
    """The concrete sampler classes ``optuna.samplers`` exports (abstract bases left out)."""
    names = []
    for name in optuna.samplers.__all__:
        obj = getattr(optuna.samplers, name, None)
        if isinstance(obj, type) and issubclass(obj, BaseSampler) and not inspect.isabstract(obj):
            names.append(name)
    return sorted(names)


def resolve_sampler(sampler: str) -> type[BaseSampler]:
    """``"GPSampler"`` (a class of ``optuna.samplers``) or ``"package.module:Class"`` (any
    ``BaseSampler`` subclass, such as one from OptunaHub installed as a package)."""
    if not isinstance(sampler, str) or not sampler:
        raise ValueError(f"sampler must be a name such as 'TPESampler' or an import path 'module:Class', "
                         f"got {sampler!r}; known samplers: {', '.join(known_samplers())}")
    if ":" in sampler:
        try:
            cls = load_object(sampler)
        except ImportError as exc:
            raise ValueError(f"sampler {sampler!r} cannot be imported: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseSampler)):
            raise ValueError(f"sampler {sampler!r} is not an optuna.samplers.BaseSampler subclass")
        return cls
    known = known_samplers()
    if sampler not in known:
        raise ValueError(unknown_name_message("Optuna sampler", sampler, known,
                                              also=" (or an import path 'module:Class' of a BaseSampler subclass)"))
    return getattr(optuna.samplers, sampler)


def policy_for(cls: type[BaseSampler]) -> Policy:
    """CMA-ES has no constraint support in Optuna; every other sampler is told constraints (the ones
    that do not use them ignore them, and ``study.best_trial`` stays right)."""
    return Policy.FEASIBLE_ONLY if issubclass(cls, CmaEsSampler) else Policy.CONSTRAINTS


def build_sampler(cls: type[BaseSampler], kwargs: Mapping[str, Any] | None, seed: int) -> BaseSampler:
    """``cls(**kwargs, seed=seed)``: the case seed goes to the sampler's ``seed`` argument when it has
    one (so it cannot also be in ``kwargs``). For GP, CMA-ES and QMC ``warn_independent_sampling``
    defaults to False: it only logs a line per independently drawn parameter and trial."""
    kwargs = dict(kwargs or {})
    signature = inspect.signature(cls)
    accepted = [name for name, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    if "seed" in kwargs:
        raise ValueError(f"sampler_kwargs sets 'seed' for {cls.__name__}: the case seed (--seeds) is the sampler's "
                         "seed; remove it from sampler_kwargs")
    unknown = [k for k in kwargs if k not in accepted]
    if unknown and not open_kwargs:
        raise ValueError(f"{cls.__name__} takes no argument {unknown[0]!r}; its arguments: {', '.join(accepted)}"
                         + did_you_mean(unknown[0], accepted))
    if "seed" in accepted:
        kwargs["seed"] = int(seed)
    if issubclass(cls, _QUIET_INDEPENDENT) and "warn_independent_sampling" in accepted:
        kwargs.setdefault("warn_independent_sampling", False)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{cls.__name__}(**{dict(kwargs)!r}) failed: {exc} (sampler objects, such as a "
                         "PartialFixedSampler's base_sampler, cannot be given as JSON sampler_kwargs)") from exc
