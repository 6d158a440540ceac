"""What the user did wrong, said the same way everywhere: :class:`UsageError` and the closest valid name.

Bad input gets one clear message: what was wrong, what is allowed, and the closest valid name
(``unknown optimizer 'tbaa'; known optimizers: ...; did you mean 'tba'?``). Every module that refuses
a name builds its message here, so the wording and the matching rule (:func:`difflib.get_close_matches`
at a cutoff of 0.5) are one.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

__all__ = ["UsageError", "closest_name", "did_you_mean", "unknown_name_message"]


class UsageError(Exception):
    """Bad input from the user: the message says what was wrong and what is allowed. Exit code 2."""


def closest_name(name: str, known: Sequence[str]) -> str | None:
    """The known name closest to ``name`` (for "did you mean" messages), or None."""
    matches = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.5)
    return matches[0] if matches else None


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest known name, or ``""`` when none is close."""
    hint = closest_name(name, list(known))
    return f"; did you mean {hint!r}?" if hint else ""


def unknown_name_message(kind: str, name: str, known: Iterable[str], *, where: str = "", also: str = "") -> str:
    """Say what was wrong, what is allowed and the closest valid name (``where``: " for task 'x'")."""
    known = sorted(known)
    return (f"unknown {kind} {name!r}{where}; known {kind}s: {', '.join(known) or '(none)'}{also}"
            + did_you_mean(name, known))
