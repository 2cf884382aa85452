"""The storage seam: one small connection protocol over SQLite (the default) and PostgreSQL.

The SQL homes (core/state, core/eventlog, the adapter's store) talk to a `Connection`
(`core.storage.base`), never to a driver. `open_connection(location)` opens a SQLite file for a
path and a PostgreSQL database for a `postgresql://` URL. The PostgreSQL driver (psycopg) is
imported only when a URL asks for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.storage.base import (
    Connection,
    Dialect,
    IntegrityError,
    Row,
    SqlParams,
    StorageError,
    is_postgres_url,
    shown_location,
)
from core.storage.sqlite import SqliteConnection, open_sqlite, snapshot_sqlite

__all__ = [
    "Connection",
    "Dialect",
    "IntegrityError",
    "Row",
    "SqlParams",
    "SqliteConnection",
    "StorageError",
    "is_postgres_url",
    "open_connection",
    "open_sqlite",
    "shown_location",
    "snapshot_sqlite",
]


async def open_connection(
    location: str | Path,
    *,
    lock_name: str = "rpbot",
    schema: str | None = None,
    read_only: bool = False,
    sqlite_pragmas: Sequence[str] = (),
) -> Connection:
    """A connection to a SQLite file (a path) or a PostgreSQL database (a `postgresql://` URL).

    For PostgreSQL, `lock_name` names the write lock its transactions take and `schema` the
    schema its tables live in; for SQLite, `sqlite_pragmas` are run first (the file is the lock)."""
    if is_postgres_url(location):
        from core.storage.postgres import open_postgres

        return await open_postgres(str(location), lock_name=lock_name, schema=schema, read_only=read_only)
    return await open_sqlite(location, pragmas=[*sqlite_pragmas, *(["query_only = ON"] if read_only else [])])
