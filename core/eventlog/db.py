"""Opening the engine's database: one writer connection, one reader connection, one write lock.

`open_database(location)` opens a SQLite file (a path: `engine.sqlite3`) or a PostgreSQL
database (a `postgresql://` URL) through the storage seam (`core.storage`), runs the
migrations and returns a `Database`.  All writes go through `Database.transaction()`, which
holds an asyncio lock for the whole transaction, so transactions of concurrent coroutines on the
single writer connection never interleave; the transaction itself holds the database's write
lock (SQLite's `BEGIN IMMEDIATE`; on PostgreSQL an advisory lock every rpbot process on that
database takes), so writers in other processes wait too.  Reads outside a transaction use the
separate reader connection (read only; SQLite in WAL mode), so a long query never queues the writer.

Read functions in core/state accept any `Readable`: the `Database` (reads the
committed state through the reader), a `Transaction` (sees its own uncommitted
writes), or a bare `Connection`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from core.eventlog.migrations import ENGINE_SCHEMA, upgrade_schema
from core.storage import Connection, Dialect, StorageError, is_postgres_url, open_connection, open_sqlite, shown_location

# Per SQLite connection (a writer and a reader).  The default 2 MB page cache thrashes once the
# memory indexes outgrow it.  No memory-mapped reads: mapped pages count in the process's
# resident memory as the log grows (32 MB cache + 256 MB mmap peaked at 329 MB on a
# 1M-memory database; 16 MB and no mmap at 58 MB, memory search p99 7.6 ms either way:
# bench/RESULTS.md, "Memory: the database's caches").
BUSY_TIMEOUT_MS = 10_000
CACHE_SIZE_KIB = 16 * 1024
MMAP_SIZE_BYTES = 0
_SQLITE_CONNECTION = (f"busy_timeout = {BUSY_TIMEOUT_MS:d}", f"cache_size = -{CACHE_SIZE_KIB:d}", f"mmap_size = {MMAP_SIZE_BYTES:d}")
_SQLITE_WRITER = ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON")
# The name of the engine's write lock on PostgreSQL (one per database, shared by every process).
ENGINE_WRITE_LOCK = "rpbot engine writes"


class _Discarded(Exception):
    """Ends a scratch transaction (rolled back by design)."""


class Transaction:
    """An open write transaction on the writer connection (see `Database.transaction`)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn = db.writer


Readable = Union["Database", Transaction, Connection]
Writable = Union["Database", Transaction]


class Database:
    def __init__(self, location: str, writer: Connection, reader: Connection) -> None:
        self.location = location  # a SQLite file's path, or a PostgreSQL URL
        self.writer = writer
        self.reader = reader
        self.write_lock = asyncio.Lock()
        self._writing_task: asyncio.Task[object] | None = None

    @property
    def dialect(self) -> Dialect:
        return self.writer.dialect

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """Hold the write lock and one write transaction; commit on success, else roll back.

        Not re-entrant: inside a transaction, pass its `Transaction` to writers
        (they join it); passing the Database again would wait on itself forever,
        so that raises RuntimeError instead.
        """
        if self._writing_task is not None and self._writing_task is asyncio.current_task():
            raise RuntimeError("already in a write transaction: pass the Transaction, not the Database")
        async with self.write_lock:
            self._writing_task = asyncio.current_task()
            try:
                async with self.writer.transaction():
                    yield Transaction(self)
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

    async def close(self) -> None:
        await self.reader.close()
        await self.writer.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def read_connection(source: Readable) -> Connection:
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


async def _open(location: str | Path, *, read_only: bool) -> Connection:
    pragmas = _SQLITE_CONNECTION if read_only else (*_SQLITE_CONNECTION, *_SQLITE_WRITER)
    return await open_connection(location, lock_name=ENGINE_WRITE_LOCK, read_only=read_only, sqlite_pragmas=pragmas)


async def open_database(location: str | Path) -> Database:
    """Open (creating if needed) and migrate the engine database at `location`: a SQLite file's
    path, or a `postgresql://` URL."""
    location = location if is_postgres_url(location) else Path(location)
    writer = await _open(location, read_only=False)
    try:
        await upgrade_schema(writer)
        reader = await _open(location, read_only=True)
    except BaseException:
        await writer.close()
        raise
    return Database(str(location), writer, reader)


@dataclass(frozen=True)
class DatabaseStatus:
    """What `database_status` found: for the operator's checks, before the bot opens the database."""

    backend: str  # "SQLite" or "PostgreSQL"
    where: str  # the file, or the URL without its password
    version: int  # the schema version it is at (0: nothing there yet)
    latest: int  # the version this rpbot brings it to
    problem: str = ""  # why it cannot be read or written ("": it can)


async def database_status(location: str | Path) -> DatabaseStatus:
    """Whether the engine's database at `location` can be reached and written, and its schema
    version; changes nothing (a PostgreSQL write is tried in a transaction rolled back)."""
    latest = ENGINE_SCHEMA.latest_version
    if not is_postgres_url(location):
        path = Path(location)
        if not await asyncio.to_thread(path.exists):
            return DatabaseStatus("SQLite", str(path), 0, latest)
        try:
            async with await open_sqlite(path, untouched=True) as conn:
                version = await ENGINE_SCHEMA.version(conn)
        except StorageError as error:
            return DatabaseStatus("SQLite", str(path), 0, latest, f"cannot be read: {error}")
        problem = "" if os.access(path, os.W_OK) else "the file is not writable by this user"
        return DatabaseStatus("SQLite", str(path), version, latest, problem)
    where = shown_location(str(location))
    try:
        async with await open_connection(location, lock_name=ENGINE_WRITE_LOCK) as conn:
            version = await ENGINE_SCHEMA.version(conn)
            try:
                await conn.execute("BEGIN")
                await conn.execute("CREATE TABLE rpbot_write_check (checked INTEGER)")
            except StorageError as error:
                return DatabaseStatus("PostgreSQL", where, version, latest, f"cannot be written: {error}")
            finally:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
    except StorageError as error:
        return DatabaseStatus("PostgreSQL", where, 0, latest, f"cannot be reached: {error}")
    return DatabaseStatus("PostgreSQL", where, version, latest)
