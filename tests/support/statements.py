"""Counting the statements a piece of code sends to the database, on either backend."""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from core.storage import Connection


@contextmanager
def counting_statements(*connections: Connection) -> Iterator[collections.Counter[str]]:
    """Count, by method (`fetch_all`, `execute`, `execute_many`, `fetch_together`), the statements
    sent through these connections inside the block (`fetch_together` counts each of its statements;
    BEGIN and COMMIT of a transaction count where the backend sends them through `execute`)."""
    counted: collections.Counter[str] = collections.Counter()
    inside_together: list[bool] = []
    names = ("fetch_all", "execute", "execute_many")
    for conn in connections:
        for name in names:
            setattr(conn, name, _counting(counted, name, getattr(conn, name), inside_together))
        conn.fetch_together = _counting_together(counted, conn.fetch_together, inside_together)  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        for conn in connections:
            for name in (*names, "fetch_together"):
                delattr(conn, name)


def _counting(counted: collections.Counter[str], name: str, method: Any, inside_together: list[bool]) -> Any:
    async def counted_call(*args: Any, **kwargs: Any) -> Any:
        if not inside_together:
            counted[name] += 1
        return await method(*args, **kwargs)

    return counted_call


def _counting_together(counted: collections.Counter[str], method: Any, inside_together: list[bool]) -> Any:
    async def counted_call(statements: Sequence[Any]) -> Any:
        counted["fetch_together"] += len(statements)
        inside_together.append(True)
        try:
            return await method(statements)
        finally:
            inside_together.pop()

    return counted_call
