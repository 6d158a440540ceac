"""Subspace blacklisting: stop proposing categorical values (or pairs) that keep failing.

The reference implementation (the TBA paper's code) charged *every* categorical value of a failing configuration, counted
infeasible results like crashes, re-stamped the cooldown on every failure and could still return a
blacklisted proposal. Here:

- only *hard* failures count: crashes, timeouts and early stops (clearly infeasible); an ordinary
  infeasible result is information about the constraints, not a broken subspace;
- blame goes where the evidence points: a failure charges the values of the configuration that have
  never run; values that have run fine are exonerated, and when every value has run fine the
  failure charges the *pairs* of values (an interaction such as backend × precision);
- a value (or pair) is blacklisted after ``threshold`` consecutive charged failures, for
  ``cooldown`` trials counted from the moment it was blacklisted (never re-stamped);
- a success on a value clears its count and its blacklist at once (success reset);
- the safety valve never lets every value of a parameter be blacklisted;
- :meth:`SubspaceTracker.blocked` checks whole configurations, so callers can reject a blacklisted
  proposal (newly activated parameters and random samples included) instead of returning it.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Mapping

from deploybench import Categorical, Outcome, SearchSpace

__all__ = ["SubspaceTracker"]

Key = tuple  # ("param", value) or (("p1", v1), ("p2", v2))


class SubspaceTracker:
    def __init__(self, space: SearchSpace, threshold: int = 3, cooldown: int = 8, pairs: bool = True) -> None:
        self.space = space
        self.threshold = threshold
        self.cooldown = cooldown
        self.pairs = pairs
        self._names = [p.name for p in space if isinstance(p, Categorical)]
        self._count: dict[Key, int] = {}
        self._blacklisted_at: dict[Key, int] = {}
        self._ran: set[tuple[str, Any]] = set()

    @staticmethod
    def hard_failure(outcome: Outcome) -> bool:
        return outcome.failed or outcome.early_stopped

    def _values(self, config: Mapping[str, Any]) -> list[tuple[str, Any]]:
        return [(n, config[n]) for n in self._names if n in config]

    def record(self, config: Mapping[str, Any], outcome: Outcome, trial: int) -> None:
        """Update counts after trial number ``trial`` (1-based count of tells)."""
        values = self._values(config)
        if not self.hard_failure(outcome):
            for v in values:
                self._ran.add(v)
                self._count.pop(v, None)
                self._blacklisted_at.pop(v, None)
            for pair in combinations(values, 2):
                self._count.pop(pair, None)
                self._blacklisted_at.pop(pair, None)
            return
        suspects: list[Key] = [v for v in values if v not in self._ran]
        if not suspects and self.pairs:
            suspects = list(combinations(values, 2))
        for key in suspects:
            self._count[key] = self._count.get(key, 0) + 1
            if self._count[key] >= self.threshold and key not in self._blacklisted_at:
                self._blacklisted_at[key] = trial

    def _expire(self, trial: int) -> None:
        for key, at in list(self._blacklisted_at.items()):
            if trial - at >= self.cooldown:
                del self._blacklisted_at[key]
                self._count.pop(key, None)

    def active(self, trial: int) -> list[Key]:
        """Blacklisted values and pairs at this trial (after cooldown expiry and the safety valve)."""
        self._expire(trial)
        keys = list(self._blacklisted_at)
        for name in self._names:  # safety valve: never every value of a parameter
            choices = self.space[name].choices
            banned = [k for k in keys if len(k) == 2 and k[0] == name and not isinstance(k[0], tuple)]
            if len(banned) >= len(choices):
                keys = [k for k in keys if k not in banned]
        return keys

    def allowed_values(self, name: str, trial: int) -> list[Any]:
        banned = {k[1] for k in self.active(trial) if k[0] == name}
        return [c for c in self.space[name].choices if c not in banned]

    def blocked(self, config: Mapping[str, Any], trial: int) -> list[Key]:
        """The active blacklist entries that ``config`` falls into (empty: the config is allowed)."""
        values = set(self._values(config))
        hits = []
        for key in self.active(trial):
            if isinstance(key[0], tuple):
                if key[0] in values and key[1] in values:
                    hits.append(key)
            elif key in values:
                hits.append(key)
        return hits
