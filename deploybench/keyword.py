"""pytest-like ``-k`` expressions over case node ids, parsed without ``eval``.

Grammar: ``expr := or_expr``; ``or_expr := and_expr ("or" and_expr)*``;
``and_expr := not_expr ("and" not_expr)*``; ``not_expr := "not" not_expr | "(" expr ")" | WORD``.
A WORD matches when it is a case-insensitive substring of the node id.
"""

from __future__ import annotations

import re
from typing import Callable

__all__ = ["compile_keyword", "KeywordError"]

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


class KeywordError(ValueError):
    """A malformed ``-k`` expression."""


def _tokenize(expr: str) -> list[str]:
    tokens, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            break
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def compile_keyword(expr: str) -> Callable[[str], bool]:
    """Compile ``expr`` into a predicate on node ids. An empty expression matches everything."""
    tokens = _tokenize(expr)
    if not tokens:
        return lambda node_id: True
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise KeywordError(f"-k {expr!r}: unexpected end of expression")
        pos += 1
        return tokens[pos - 1]

    def parse_or() -> Callable[[str], bool]:
        left = parse_and()
        while peek() == "or":
            take()
            right = parse_and()
            left = (lambda a, b: lambda s: a(s) or b(s))(left, right)
        return left

    def parse_and() -> Callable[[str], bool]:
        left = parse_not()
        while peek() == "and":
            take()
            right = parse_not()
            left = (lambda a, b: lambda s: a(s) and b(s))(left, right)
        return left

    def parse_not() -> Callable[[str], bool]:
        tok = take()
        if tok == "not":
            inner = parse_not()
            return lambda s: not inner(s)
        if tok == "(":
            inner = parse_or()
            if take() != ")":
                raise KeywordError(f"-k {expr!r}: missing ')'")
            return inner
        if tok in (")", "and", "or"):
            raise KeywordError(f"-k {expr!r}: unexpected {tok!r}")
        word = tok.lower()
        return lambda s: word in s.lower()

    predicate = parse_or()
    if pos != len(tokens):
        raise KeywordError(f"-k {expr!r}: unexpected {tokens[pos]!r}")
    return predicate
