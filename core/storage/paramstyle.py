"""Our SQL's parameter style (SQLite's `?` and `:name`) in PostgreSQL's (`$1`, `$2`, ...).

`to_numbered(sql)` rewrites a statement once (the result is cached): each `?` becomes the next
`$n`; each distinct `:name` gets one `$n`, reused wherever the name repeats. Quoted strings
(dollar-quoted too), quoted identifiers, comments and PostgreSQL's `::type` casts are left alone. `bind` then turns the
caller's parameters into the sequence the numbered statement needs.
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


@dataclass(frozen=True)
class NumberedStatement:
    sql: str
    names: tuple[str, ...] | None  # for named parameters: the name of $1, $2, ...
    positional: int  # for positional parameters: how many

    def bind(self, params: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any]:
        if self.names is None and not self.positional:
            if params:
                raise TypeError("the statement takes no parameters")
            return ()
        if self.names is None:
            if isinstance(params, Mapping):
                raise TypeError("this statement takes positional (?) parameters, not a mapping")
            if len(params) != self.positional:
                raise TypeError(f"the statement takes {self.positional} parameters, {len(params)} given")
            return params
        if not isinstance(params, Mapping):
            raise TypeError("this statement takes named (:name) parameters: pass a mapping")
        return [params[name] for name in self.names]


@lru_cache(maxsize=4096)
def to_numbered(sql: str) -> NumberedStatement:
    names: list[str] = []
    positional = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal positional
        if match.group("skip"):
            return match.group(0)
        if match.group("positional"):
            positional += 1
            return f"${positional}"
        name = match.group("name")
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    numbered = _TOKENS.sub(replace, sql)
    if positional and names:
        raise ValueError("a statement cannot mix positional (?) and named (:name) parameters")
    return NumberedStatement(numbered, tuple(names) if names else None, positional)
