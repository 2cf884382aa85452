"""The storage seam on SQLite, through aiosqlite (one thread per connection).

`open_sqlite(path, pragmas=...)` returns a `SqliteConnection` in autocommit mode. Its
`transaction()` is `BEGIN IMMEDIATE ... COMMIT`: SQLite's own write lock, one writer per file.
Statements run through `execute_fetchall` / `execute_insert` only: the cursor of a bare
`execute` lives on and may be freed on the event-loop thread while the connection's own thread
runs another statement, and sqlite3 then fails with "bad parameter or other API misuse".
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any, cast

import aiosqlite

from core.storage.base import Connection, Dialect, IntegrityError, Row, SqlParams, StorageError


def _storage_error(error: sqlite3.Error) -> StorageError:
    kind = IntegrityError if isinstance(error, sqlite3.IntegrityError) else StorageError
    return kind(str(error))


class SqliteConnection(Connection):
    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    async def fetch_all(self, sql: str, params: SqlParams = ()) -> list[Row]:
        try:
            return cast(list[Row], list(await self.conn.execute_fetchall(sql, params)))
        except sqlite3.Error as error:
            raise _storage_error(error) from error

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        try:
            async with self.conn.execute(sql, params) as cursor:
                return cursor.rowcount
        except sqlite3.Error as error:
            raise _storage_error(error) from error

    async def execute_many(self, sql: str, params: Iterable[SqlParams]) -> None:
        try:
            await self.conn.executemany(sql, cast(Iterable[Sequence[Any]], params))
        except sqlite3.Error as error:
            raise _storage_error(error) from error

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # Shielded so that a cancelled caller still leaves no transaction open.
            await asyncio.shield(self.conn.execute_fetchall("ROLLBACK"))
            raise
        try:
            await asyncio.shield(self.conn.execute_fetchall("COMMIT"))
        except Exception as error:
            # (On cancellation the shielded COMMIT still runs, queued before any later BEGIN.)
            if self.conn.in_transaction:
                await asyncio.shield(self.conn.execute_fetchall("ROLLBACK"))
            if isinstance(error, sqlite3.Error):
                raise _storage_error(error) from error
            raise

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    async def close(self) -> None:
        await self.conn.close()


async def _ensure_math_functions(conn: aiosqlite.Connection) -> None:
    # Memory search uses ln(); SQLite builds without SQLITE_ENABLE_MATH_FUNCTIONS lack it.
    try:
        await conn.execute_fetchall("SELECT ln(2)")
    except sqlite3.OperationalError:
        await conn.create_function("ln", 1, math.log, deterministic=True)


def read_only_uri(path: Path) -> str:
    """An SQLite URI that reads `path` without creating or changing any file next to it.

    With no WAL file present (the bot is stopped, or checkpointed), `immutable=1` keeps
    SQLite from creating empty -wal/-shm files; with one present, plain read-only mode
    reads the WAL too (the bot may be running)."""
    wal = path.with_name(path.name + "-wal")
    return f"file:{path}?mode=ro" if wal.exists() else f"file:{path}?immutable=1"


def snapshot_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite file `source` (its WAL included) at `target`, through
    SQLite's backup API; the source is only read, and may be in use."""
    with closing(sqlite3.connect(read_only_uri(source), uri=True)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


async def open_sqlite(path: str | Path, *, pragmas: Sequence[str] = (), untouched: bool = False) -> SqliteConnection:
    """Open (creating if needed) the SQLite file at `path`, running each `PRAGMA` given first.
    `untouched`: open an existing file only to read it, creating or changing nothing beside it."""
    path = Path(path)
    if untouched:
        conn = await aiosqlite.connect(read_only_uri(path), isolation_level=None, uri=True)
    else:
        conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        for pragma in pragmas:
            await conn.execute_fetchall(f"PRAGMA {pragma}")
        await _ensure_math_functions(conn)
    except BaseException:
        await conn.close()  # its thread would otherwise keep the process alive
        raise
    return SqliteConnection(conn, path)
