"""Our SQL's parameter style (SQLite's `?` and `:name`) in PostgreSQL's (`$1`, `$2`, ...).

`numbered(sql, params)` gives the statement PostgreSQL runs and the values it takes: each `?`
becomes the next `$n`; each distinct `:name` gets one `$n`, reused wherever the name repeats.
Quoted strings (dollar-quoted too), quoted identifiers, comments and PostgreSQL's `::type` casts
are left alone.

A parameter whose value is None is written into the statement as `NULL` instead: PostgreSQL
must know every parameter's type, and cannot tell it from `$1 IS NULL` (our SQL's way of saying
"no filter when not given"), while a NULL literal takes its type from where it stands. Both steps
are cached per statement (and per set of NULL parameters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# Things to skip whole (literals, identifiers, comments, casts) or to rewrite (placeholders).
_TOKENS = re.compile(
    r"""(?P<skip>'(?:[^']|'')*'|"(?:[^"]|"")*"|\$\$.*?\$\$|--[^\n]*|/\*.*?\*/|::)"""
    r"""|(?P<positional>\?)"""
    r"""|(?<![:\w]):(?P<name>[A-Za-z_]\w*)""",
    re.DOTALL,
)

Key = int | str  # a positional parameter's index, or a named one's name


@dataclass(frozen=True)
class _Parsed:
    texts: tuple[str, ...]  # the SQL around the placeholders: one more than `keys`
    keys: tuple[Key, ...]  # the parameter at each placeholder, in order
    named: bool


@lru_cache(maxsize=4096)
def _parse(sql: str) -> _Parsed:
    texts: list[str] = []
    keys: list[Key] = []
    start = 0
    positional = 0
    for match in _TOKENS.finditer(sql):
        if match.group("skip"):
            continue
        texts.append(sql[start:match.start()])
        start = match.end()
        if match.group("positional"):
            keys.append(positional)
            positional += 1
        else:
            keys.append(match.group("name"))
    texts.append(sql[start:])
    named = any(isinstance(key, str) for key in keys)
    if named and positional:
        raise ValueError("a statement cannot mix positional (?) and named (:name) parameters")
    return _Parsed(tuple(texts), tuple(keys), named)


@lru_cache(maxsize=4096)
def _render(sql: str, nulls: frozenset[Key]) -> tuple[str, tuple[Key, ...]]:
    """The numbered statement with the parameters in `nulls` written as NULL, and the parameter
    each `$n` stands for."""
    parsed = _parse(sql)
    order: list[Key] = []
    pieces = [parsed.texts[0]]
    for key, text in zip(parsed.keys, parsed.texts[1:], strict=True):
        if key in nulls:
            pieces.append("NULL")
        else:
            if key not in order:
                order.append(key)
            pieces.append(f"${order.index(key) + 1}")
        pieces.append(text)
    return "".join(pieces), tuple(order)


@dataclass(frozen=True)
class Numbered:
    sql: str
    values: Sequence[Any]


def numbered(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Numbered:
    parsed = _parse(sql)
    if not parsed.keys:
        if params:
            raise TypeError("the statement takes no parameters")
        return Numbered(sql, ())
    if parsed.named:
        if not isinstance(params, Mapping):
            raise TypeError("this statement takes named (:name) parameters: pass a mapping")
        value_of: Any = params
    else:
        if isinstance(params, Mapping):
            raise TypeError("this statement takes positional (?) parameters, not a mapping")
        if len(params) != len(parsed.keys):
            raise TypeError(f"the statement takes {len(parsed.keys)} parameters, {len(params)} given")
        value_of = params
    nulls = frozenset(key for key in set(parsed.keys) if value_of[key] is None)
    text, order = _render(sql, nulls)
    return Numbered(text, [value_of[key] for key in order])
