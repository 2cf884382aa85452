"""Counting the statements a piece of code sends to the database, on either backend."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.storage import Connection


@contextmanager
def counting_statements(*connections: Connection) -> Iterator[collections.Counter[str]]:
    """Count, by method (`fetch_all`, `execute`, `execute_many`), the statements sent through
    these connections inside the block (BEGIN and COMMIT of a transaction included where the
    backend sends them through `execute`)."""
    counted: collections.Counter[str] = collections.Counter()
    names = ("fetch_all", "execute", "execute_many")
    for conn in connections:
        for name in names:
            setattr(conn, name, _counting(counted, name, getattr(conn, name)))
    try:
        yield counted
    finally:
        for conn in connections:
            for name in names:
                delattr(conn, name)


def _counting(counted: collections.Counter[str], name: str, method: Any) -> Any:
    async def counted_call(*args: Any, **kwargs: Any) -> Any:
        counted[name] += 1
        return await method(*args, **kwargs)

    return counted_call
