"""Opening engine.sqlite3: one writer connection, one reader connection, one write lock.

`open_database(path)` runs the migrations and returns a `Database`.  All writes
go through `Database.transaction()`, which holds an asyncio lock for the whole
`BEGIN IMMEDIATE ... COMMIT`, so transactions of concurrent coroutines on the
single writer connection never interleave.  Reads outside a transaction use the
separate reader connection (WAL mode), so a long query never queues the writer.

Read functions in core/state accept any `Readable`: the `Database` (reads the
committed state through the reader), a `Transaction` (sees its own uncommitted
writes), or a bare aiosqlite connection.

Run SQL with `execute_fetchall` / `execute_insert`, never bare `execute`: the
cursor of `execute` lives on and may be freed on the event-loop thread while
the connection's own thread runs another statement, and sqlite3 then fails
with "bad parameter or other API misuse".
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Union

import aiosqlite

from core.eventlog.migrations import upgrade_schema

BUSY_TIMEOUT_MS = 10_000
# Per connection (a writer and a reader).  The default 2 MB page cache thrashes once the
# memory indexes outgrow it.  No memory-mapped reads: mapped pages count in the process's
# resident memory as the log grows (32 MB cache + 256 MB mmap peaked at 329 MB on a
# 1M-memory database; 16 MB and no mmap at 58 MB, memory search p99 7.6 ms either way:
# bench/RESULTS.md, "Memory: the database's caches").
CACHE_SIZE_KIB = 16 * 1024
MMAP_SIZE_BYTES = 0


class _Discarded(Exception):
    """Ends a scratch transaction (rolled back by design)."""


class Transaction:
    """An open write transaction on the writer connection (see `Database.transaction`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db.writer


Readable = Union["Database", Transaction, aiosqlite.Connection]
Writable = Union["Database", Transaction]


class Database:
    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self.writer = writer
        self.reader = reader
        self.write_lock = asyncio.Lock()
        self._writing_task: asyncio.Task[object] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Hold the write lock and one IMMEDIATE transaction; commit on success, else roll back.

        Not re-entrant: inside a transaction, pass its `Transaction` to writers
        (they join it); passing the Database again would wait on itself forever,
        so that raises RuntimeError instead.
        """
        if self._writing_task is not None and self._writing_task is asyncio.current_task():
            raise RuntimeError("already in a write transaction: pass the Transaction, not the Database")
        async with self.write_lock:
            self._writing_task = asyncio.current_task()
            try:
                async with self._immediate() as tx:
                    yield tx
            finally:
                self._writing_task = None

    @asynccontextmanager
    async def scratch(self) -> AsyncIterator[Transaction]:
        """A write transaction that is always rolled back: to read the state some writes would
        leave (a prompt built on the story with a reply taken back) without keeping them.
        Holds the write lock while it lasts: keep it short (never wait on a model inside)."""
        try:
            async with self.transaction() as tx:
                yield tx
                raise _Discarded
        except _Discarded:
            pass

    @asynccontextmanager
    async def _immediate(self) -> AsyncIterator[Transaction]:
        await self.writer.execute_fetchall("BEGIN IMMEDIATE")
        try:
            yield Transaction(self)
        except BaseException:
            # Shielded so that a cancelled caller still leaves no transaction open.
            await asyncio.shield(self.writer.execute_fetchall("ROLLBACK"))
            raise
        try:
            await asyncio.shield(self.writer.execute_fetchall("COMMIT"))
        except Exception:
            # (On cancellation the shielded COMMIT still runs, queued before any later BEGIN.)
            if self.writer.in_transaction:
                await asyncio.shield(self.writer.execute_fetchall("ROLLBACK"))
            raise

    async def close(self) -> None:
        await self.reader.close()
        await self.writer.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def read_connection(source: Readable) -> aiosqlite.Connection:
    if isinstance(source, Database):
        return source.reader
    if isinstance(source, Transaction):
        return source.conn
    return source


@asynccontextmanager
async def writing(target: Writable) -> AsyncIterator[Transaction]:
    """Join the caller's transaction, or open one if given the Database."""
    if isinstance(target, Transaction):
        yield target
    else:
        async with target.transaction() as tx:
            yield tx


async def _ensure_math_functions(conn: aiosqlite.Connection) -> None:
    # Memory search uses ln(); SQLite builds without SQLITE_ENABLE_MATH_FUNCTIONS lack it.
    try:
        await conn.execute_fetchall("SELECT ln(2)")
    except sqlite3.OperationalError:
        await conn.create_function("ln", 1, math.log, deterministic=True)


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute_fetchall(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        await conn.execute_fetchall(f"PRAGMA cache_size = -{CACHE_SIZE_KIB:d}")
        await conn.execute_fetchall(f"PRAGMA mmap_size = {MMAP_SIZE_BYTES:d}")
        await _ensure_math_functions(conn)
    except BaseException:
        await conn.close()  # its thread would otherwise keep the process alive
        raise
    return conn


async def open_database(path: str | Path) -> Database:
    """Open (creating if needed) and migrate the engine database at `path`."""
    path = Path(path)
    writer = await _connect(path)
    try:
        await writer.execute_fetchall("PRAGMA journal_mode = WAL")
        await writer.execute_fetchall("PRAGMA synchronous = NORMAL")
        await writer.execute_fetchall("PRAGMA foreign_keys = ON")
        await upgrade_schema(writer)
        reader = await _connect(path)
    except BaseException:
        await writer.close()
        raise
    database = Database(path, writer, reader)
    try:
        await reader.execute_fetchall("PRAGMA query_only = ON")
    except BaseException:
        await database.close()
        raise
    return database
