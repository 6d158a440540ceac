"""Search spaces: typed, ordered, conditional parameters.

A configuration is a plain ``dict`` holding exactly the *active* parameters. Conditions are
declarative (a parent parameter and the values that activate the child), never strings to
``eval``. Every optimizer sees the same domain through one :class:`SearchSpace`: validation,
seeded sampling, a canonical key for dedup and caching, a JSON form with a signature hash, and
one shared numeric encoding for model-based optimizers.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import closest_name, did_you_mean

__all__ = [
    "Condition",
    "Param",
    "Categorical",
    "Integer",
    "Float",
    "Ordinal",
    "SearchSpace",
    "InvalidConfigError",
    "closest_name",
]

Config = dict[str, Any]


class InvalidConfigError(ValueError):
    """A configuration does not belong to the space; the message names the parameter and domain."""


@dataclass(frozen=True)
class Condition:
    """The parameter is active only when ``parent`` is active and its value is in ``values``."""

    parent: str
    values: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))

    def holds(self, config: Mapping[str, Any]) -> bool:
        return self.parent in config and config[self.parent] in self.values

    def to_json(self) -> dict:
        return {"parent": self.parent, "values": list(self.values)}

    def describe(self) -> str:
        return f"{self.parent} in {list(self.values)}"


@dataclass(frozen=True)
class Param(ABC):
    """One parameter. Subclasses define the domain, sampling, validation and encoding."""

    name: str
    condition: Condition | None = field(default=None, kw_only=True)

    kind: str = field(default="", init=False, repr=False)

    @abstractmethod
    def validate(self, value: Any) -> None:
        """Raise :class:`InvalidConfigError` naming the parameter and its domain if invalid."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw a value uniformly (log-uniformly for log-scaled numerics)."""

    @abstractmethod
    def domain(self) -> str:
        """Human-readable domain, used in error messages and docs."""

    @abstractmethod
    def encode(self, value: Any) -> list[float]:
        """Numeric encoding in [0, 1]; categoricals one-hot."""

    @property
    @abstractmethod
    def width(self) -> int:
        """Number of columns :meth:`encode` produces."""

    @abstractmethod
    def _domain_json(self) -> dict:
        ...

    def to_json(self) -> dict:
        data = {"name": self.name, "kind": self.kind, **self._domain_json()}
        if self.condition is not None:
            data["condition"] = self.condition.to_json()
        return data

    def _fail(self, value: Any, why: str = "") -> InvalidConfigError:
        extra = f" ({why})" if why else ""
        return InvalidConfigError(
            f"parameter {self.name!r}: value {value!r} is not allowed{extra}; allowed: {self.domain()}"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Categorical(Param):
    """Unordered choices (model family, backend, precision)."""

    choices: tuple = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        object.__setattr__(self, "kind", "categorical")
        if len(self.choices) < 1:
            raise ValueError(f"categorical parameter {self.name!r} needs at least one choice")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"categorical parameter {self.name!r} has duplicate choices")

    def validate(self, value: Any) -> None:
        if not any(value == c and type(value) is type(c) or (value == c and _is_number(value) and _is_number(c))
                   for c in self.choices):
            hint = closest_name(str(value), [str(c) for c in self.choices])
            raise self._fail(value, f"did you mean {hint!r}?" if hint else "")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.choices[int(rng.integers(len(self.choices)))]

    def domain(self) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)

    def encode(self, value: Any) -> list[float]:
        return [1.0 if c == value else 0.0 for c in self.choices]

    @property
    def width(self) -> int:
        return len(self.choices)

    def _domain_json(self) -> dict:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class _Numeric(Param):
    low: float = 0.0
    high: float = 1.0
    log: bool = False

    def _check_bounds(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name!r}: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {self.name!r}: a log-scaled range must be positive, got low={self.low}")

    def to_unit(self, value: float) -> float:
        """Map a value to [0, 1], honouring log scale."""
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)

    def _from_unit_float(self, u: float) -> float:
        u = min(1.0, max(0.0, float(u)))
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)

    def encode(self, value: Any) -> list[float]:
        return [self.to_unit(value)]

    @property
    def width(self) -> int:
        return 1

    def domain(self) -> str:
        scale = ", log scale" if self.log else ""
        return f"{self.kind} in [{self.low}, {self.high}]{scale}"

    def _domain_json(self) -> dict:
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Integer(_Numeric):
    """An integer range, inclusive at both ends."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "integer")
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))
        self._check_bounds()

    def validate(self, value: Any) -> None:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise self._fail(value, "not an integer")
        if not self.low <= value <= self.high:
            raise self._fail(value, "out of range")

    def from_unit(self, u: float) -> int:
        return int(min(self.high, max(self.low, round(self._from_unit_float(u)))))

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            # log-uniform over the integers: sample the continuous range widened by half a unit
            lo, hi = math.log(self.low - 0.4999), math.log(self.high + 0.4999)
            return int(min(self.high, max(self.low, round(math.exp(rng.uniform(lo, hi))))))
        return int(rng.integers(self.low, self.high + 1))


@dataclass(frozen=True)
class Float(_Numeric):
    """A continuous range."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", "float")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        self._check_bounds()

    def validate(self, value: Any) -> None:
        if not _is_number(value):
            raise self._fail(value, "not a number")
        if not math.isfinite(float(value)) or not self.low <= float(value) <= self.high:
            raise self._fail(value, "out of range")

    def from_unit(self, u: float) -> float:
        return float(min(self.high, max(self.low, self._from_unit_float(u))))

    def sample(self, rng: np.random.Generator) -> float:
        return self.from_unit(float(rng.uniform()))


@dataclass(frozen=True)
class Ordinal(Param):
    """An ordered list of values, e.g. batch sizes (1, 2, 4, 8, 16, 32).

    Sampling is uniform over the listed values; the encoding is the index scaled to [0, 1]
    (with ``log=True`` the log of the value scaled, for geometric grids).
    """

    values: tuple = ()
    log: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "kind", "ordinal")
        if len(self.values) < 1:
            raise ValueError(f"ordinal parameter {self.name!r} needs at least one value")
        if list(self.values) != sorted(self.values) or len(set(self.values)) != len(self.values):
            raise ValueError(f"ordinal parameter {self.name!r}: values must be strictly increasing")
        if self.log and self.values[0] <= 0:
            raise ValueError(f"ordinal parameter {self.name!r}: log scale needs positive values")

    def validate(self, value: Any) -> None:
        if isinstance(value, bool) or value not in self.values:
            raise self._fail(value)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]

    def index(self, value: Any) -> int:
        return self.values.index(value)

    def to_unit(self, value: Any) -> float:
        if len(self.values) == 1:
            return 0.0
        if self.log:
            lo, hi = math.log(self.values[0]), math.log(self.values[-1])
            return (math.log(value) - lo) / (hi - lo)
        return self.index(value) / (len(self.values) - 1)

    def from_unit(self, u: float) -> Any:
        """The listed value whose unit position is closest to ``u``."""
        positions = [self.to_unit(v) for v in self.values]
        best = min(range(len(self.values)), key=lambda i: abs(positions[i] - u))
        return self.values[best]

    def encode(self, value: Any) -> list[float]:
        return [self.to_unit(value)]

    @property
    def width(self) -> int:
        return 1

    def domain(self) -> str:
        return "one of the ordered values " + ", ".join(repr(v) for v in self.values)

    def _domain_json(self) -> dict:
        return {"values": list(self.values), "log": self.log}


def _reflect(u: float) -> float:
    """Fold a unit coordinate back into [0, 1] by reflection at the bounds (no piling up on them)."""
    u = abs(float(u)) % 2.0
    return 2.0 - u if u > 1.0 else u


_KINDS: dict[str, type[Param]] = {"categorical": Categorical, "integer": Integer, "float": Float, "ordinal": Ordinal}


def _canonical_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


class SearchSpace:
    """An ordered collection of parameters. Parents must be declared before their children."""

    def __init__(self, params: Sequence[Param]):
        self.params: tuple[Param, ...] = tuple(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")
        seen: set[str] = set()
        for p in self.params:
            if p.condition is not None and p.condition.parent not in seen:
                raise ValueError(
                    f"parameter {p.name!r} is conditioned on {p.condition.parent!r}, which must be declared before it"
                )
            seen.add(p.name)
        self._by_name = {p.name: p for p in self.params}

    # -- introspection -------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def __getitem__(self, name: str) -> Param:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"no parameter {name!r}; known: {', '.join(self.names)}" + did_you_mean(name, self.names)
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        return f"SearchSpace({', '.join(self.names)})"

    @property
    def is_finite(self) -> bool:
        return not any(isinstance(p, Float) for p in self.params)

    def active_names(self, config: Mapping[str, Any]) -> list[str]:
        """Names of the parameters active under ``config``, in declared order."""
        return [p.name for p in self.params if p.condition is None or p.condition.holds(config)]

    # -- validation ----------------------------------------------------------------------------
    def validate(self, config: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidConfigError` unless ``config`` holds exactly the active parameters."""
        if not isinstance(config, Mapping):
            raise InvalidConfigError(f"a configuration must be a dict of parameter values, got {type(config).__name__}")
        for key in config:
            if key not in self._by_name:
                raise InvalidConfigError(
                    f"unknown parameter {key!r}; known parameters: {', '.join(self.names)}"
                    + did_you_mean(str(key), self.names)
                )
        for p in self.params:
            active = p.condition is None or p.condition.holds(config)
            if active and p.name not in config:
                raise InvalidConfigError(f"parameter {p.name!r} is active but missing; allowed: {p.domain()}")
            if not active and p.name in config:
                raise InvalidConfigError(
                    f"parameter {p.name!r} is set but inactive (it is active only when {p.condition.describe()})"
                )
            if active:
                p.validate(config[p.name])

    def is_valid(self, config: Mapping[str, Any]) -> bool:
        try:
            self.validate(config)
        except InvalidConfigError:
            return False
        return True

    # -- sampling ------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Config:
        """A uniformly sampled configuration (log-uniform for log-scaled numerics)."""
        return self.complete({}, rng)

    def complete(self, partial: Mapping[str, Any], rng: np.random.Generator) -> Config:
        """Resolve the hierarchy: keep active values of ``partial``, drop inactive ones, sample missing ones."""
        config: Config = {}
        for p in self.params:
            if p.condition is not None and not p.condition.holds(config):
                continue
            config[p.name] = _canonical_value(partial[p.name]) if p.name in partial else p.sample(rng)
        return config

    def grid(self) -> Iterator[Config]:
        """Every configuration of a finite space (no float parameters), in declared order."""
        if not self.is_finite:
            raise ValueError("grid() needs a finite space; float parameters have no grid")

        def values(p: Param) -> Sequence[Any]:
            if isinstance(p, Categorical):
                return p.choices
            if isinstance(p, Ordinal):
                return p.values
            assert isinstance(p, Integer)
            return range(p.low, p.high + 1)

        def walk(i: int, config: Config) -> Iterator[Config]:
            if i == len(self.params):
                yield dict(config)
                return
            p = self.params[i]
            if p.condition is not None and not p.condition.holds(config):
                yield from walk(i + 1, config)
                return
            for v in values(p):
                config[p.name] = v
                yield from walk(i + 1, config)
            del config[p.name]

        yield from walk(0, {})

    # -- identity ------------------------------------------------------------------------------
    def key(self, config: Mapping[str, Any]) -> str:
        """Canonical key of a configuration: declared order, active parameters only, exact values."""
        items = [[p.name, _canonical_value(config[p.name])] for p in self.params if p.name in config]
        return json.dumps(items, separators=(",", ":"), sort_keys=False)

    def to_json(self) -> dict:
        return {"params": [p.to_json() for p in self.params]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SearchSpace":
        params = []
        for item in data["params"]:
            item = dict(item)
            kind = item.pop("kind")
            name = item.pop("name")
            cond = item.pop("condition", None)
            condition = Condition(cond["parent"], tuple(cond["values"])) if cond else None
            cls_ = _KINDS[kind]
            if kind == "categorical":
                params.append(cls_(name, choices=tuple(item["choices"]), condition=condition))
            elif kind == "ordinal":
                params.append(cls_(name, values=tuple(item["values"]), log=item.get("log", False), condition=condition))
            else:
                params.append(cls_(name, low=item["low"], high=item["high"], log=item.get("log", False), condition=condition))
        return cls(params)

    def signature(self) -> str:
        """A short hash of the space's JSON form; equal spaces have equal signatures."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.signature())

    # -- shared encoding -----------------------------------------------------------------------
    @property
    def encoding_width(self) -> int:
        return sum(p.width + (1 if p.condition is not None else 0) for p in self.params)

    def encoding_names(self) -> list[str]:
        """Column names of :meth:`encode`: ``model=resnet18`` one-hots, numerics, ``x3:inactive`` flags."""
        names: list[str] = []
        for p in self.params:
            if isinstance(p, Categorical):
                names += [f"{p.name}={c}" for c in p.choices]
            else:
                names.append(p.name)
            if p.condition is not None:
                names.append(f"{p.name}:inactive")
        return names

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """The shared numeric encoding: one-hot categoricals, numerics in [0, 1] (log scale honoured),
        and for each conditional parameter an inactive flag (its value columns are then 0)."""
        row: list[float] = []
        for p in self.params:
            if p.name in config:
                row += p.encode(config[p.name])
                if p.condition is not None:
                    row.append(0.0)
            else:
                row += [0.0] * p.width
                if p.condition is not None:
                    row.append(1.0)
        return np.asarray(row, dtype=float)

    def encode_many(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not configs:
            return np.zeros((0, self.encoding_width))
        return np.vstack([self.encode(c) for c in configs])

    # -- local moves (shared by local-search optimizers) -----------------------------------------
    def perturb(self, config: Mapping[str, Any], name: str, scale: float, rng: np.random.Generator) -> Config:
        """Change parameter ``name`` of ``config`` by a local move and resolve the hierarchy.

        Categoricals take another choice uniformly; numerics and ordinals move by a Gaussian step
        of standard deviation ``scale`` in the unit encoding (log scale honoured), at least one
        grid step for integers and ordinals, so the value always changes when it can.
        """
        p = self[name]
        new = dict(config)
        current = config[name]
        if isinstance(p, Categorical):
            others = [c for c in p.choices if c != current]
            if others:
                new[name] = others[int(rng.integers(len(others)))]
        elif isinstance(p, Ordinal):
            i, n = p.index(current), len(p.values)
            if n > 1:
                step = max(1, int(round(abs(rng.normal(0.0, scale)) * (n - 1))))
                targets = [j for j in (i - step, i + step) if 0 <= j < n] or [min(n - 1, max(0, i + step)), max(0, i - step)]
                targets = [j for j in targets if j != i] or [i + 1 if i + 1 < n else i - 1]
                new[name] = p.values[targets[int(rng.integers(len(targets)))]]
        elif isinstance(p, Integer):
            u = p.to_unit(current) + rng.normal(0.0, scale)
            value = p.from_unit(_reflect(u))
            if value == current:  # at least one step, away from a bound
                up = current < p.high and (u >= p.to_unit(current) or current == p.low)
                value = current + 1 if up else current - 1
            new[name] = int(min(p.high, max(p.low, value)))
        else:
            assert isinstance(p, Float)
            value = current
            for _ in range(20):
                value = p.from_unit(_reflect(p.to_unit(current) + rng.normal(0.0, scale)))
                if value != current:
                    break
            new[name] = value
        return self.complete(new, rng)
