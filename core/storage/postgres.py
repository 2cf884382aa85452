"""The storage seam on PostgreSQL, through psycopg 3 (its asyncio connection).

`open_postgres(url, ...)` returns a `PostgresConnection` in autocommit mode. Statements are
written in our SQL's parameter style and run numbered (`core.storage.paramstyle`, which also
writes a None parameter as NULL) through a raw cursor; psycopg prepares a statement on the server
once it has run a few times.

Values read back as SQLite gives them, so the SQL homes read both alike: JSON columns as text,
`numeric` results as int or float; a Python int is written as a BIGINT and a bool as the integer
1 or 0 (our flags are INTEGER columns on both). `transaction()` is `BEGIN` plus `pg_advisory_xact_lock(lock_key)`:
one writer at a time per lock key across every process on the server (see `core.storage.base`).
Transactions run at READ COMMITTED, so each statement after the lock sees every earlier commit.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, ClassVar, cast

import psycopg
from psycopg import sql as pgsql
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.rows import RowMaker
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper
from psycopg.types.string import StrDumper, TextLoader

from core.storage.base import Connection, Dialect, IntegrityError, Row, SqlParams, StorageError
from core.storage.paramstyle import numbered


def lock_key(name: str) -> int:
    """A stable 63-bit advisory lock key for a name (the database's, or a schema's)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class PgRow(tuple[Any, ...]):
    """A row readable by index and by column name (as sqlite3.Row is)."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)  # the first of two same-named columns, as sqlite3.Row
    return type("PgRow", (PgRow,), {"__slots__": (), "_index": index})


def _row_factory(cursor: Any) -> RowMaker[PgRow]:
    # The column names straight from the result: `cursor.description` would build a Column
    # object per column for every statement, a fifth of a short statement's time in Python.
    result = cursor.pgresult
    names = () if result is None else tuple(result.fname(i).decode() for i in range(result.nfields))
    return cast(RowMaker[PgRow], _row_class(names))


class _BoolAsInteger(Dumper):
    """Python bools are stored as INTEGER 1/0, as SQLite stores them."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _NumericAsNumber(Loader):
    """A `numeric` result (a sum of BIGINTs, arithmetic with a literal like 1.0) reads as SQLite's
    would: an int when it is whole, else a float."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def _configure(context: AdaptContext) -> None:
    adapters = context.adapters
    adapters.register_dumper(bool, _BoolAsInteger)
    # Every Python int is a BIGINT, as every SQLite integer is 64 bits: psycopg would otherwise
    # send a small one as int4, and arithmetic on it (`:chat_num << 32`) would overflow there.
    adapters.register_dumper(int, Int8Dumper)
    adapters.register_dumper(int, Int8BinaryDumper)
    # Every Python str is TEXT, as SQLite takes it: psycopg would send it untyped, and a parameter
    # with nothing around it to type it (`:who IS NULL OR ...`) would then be refused.
    adapters.register_dumper(str, StrDumper)
    for json_type in ("json", "jsonb"):
        adapters.register_loader(json_type, TextLoader)
    adapters.register_loader("numeric", _NumericAsNumber)


def _storage_error(error: psycopg.Error) -> StorageError:
    kind = IntegrityError if isinstance(error, psycopg.errors.IntegrityError) else StorageError
    return kind(str(error).strip())


class PostgresConnection(Connection):
    dialect = Dialect.POSTGRESQL

    def __init__(self, conn: psycopg.AsyncConnection[PgRow], lock_key: int) -> None:
        self.conn = conn
        self.lock_key = lock_key

    async def _run(self, sql: str, params: SqlParams, *, rows: bool) -> tuple[list[Row], int]:
        statement = numbered(sql, params)
        try:
            async with psycopg.AsyncRawCursor(self.conn, row_factory=_row_factory) as cursor:
                await cursor.execute(statement.sql, statement.values)
                result = cursor.pgresult
                returned_rows = result is not None and result.status == ExecStatus.TUPLES_OK
                fetched = await cursor.fetchall() if rows and returned_rows else []
                return cast(list[Row], fetched), cursor.rowcount
        except psycopg.Error as error:
            raise _storage_error(error) from error

    async def fetch_all(self, sql: str, params: SqlParams = ()) -> list[Row]:
        return (await self._run(sql, params, rows=True))[0]

    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        return (await self._run(sql, params, rows=False))[1]

    async def execute_many(self, sql: str, params: Iterable[SqlParams]) -> None:
        # Rows with NULLs in different places are different statements: each runs in its group.
        groups: dict[str, list[Sequence[Any]]] = {}
        for one in params:
            statement = numbered(sql, one)
            groups.setdefault(statement.sql, []).append(statement.values)
        try:
            async with psycopg.AsyncRawCursor(self.conn) as cursor:
                for text, values in groups.items():
                    await cursor.executemany(text, values)
        except psycopg.Error as error:
            raise _storage_error(error) from error

    async def fetch_together(self, statements: Sequence[tuple[str, SqlParams]]) -> list[list[Row]]:
        # A pipeline: every statement sent, then one sync; the server runs them in order and stops
        # at the first error (the rest are skipped; inside a transaction, the transaction fails).
        prepared = [numbered(sql, params) for sql, params in statements]
        cursors = [psycopg.AsyncRawCursor(self.conn, row_factory=_row_factory) for _ in prepared]
        try:
            async with self.conn.pipeline():
                for cursor, statement in zip(cursors, prepared, strict=True):
                    await cursor.execute(statement.sql, statement.values)
            rows: list[list[Row]] = []
            for cursor in cursors:
                result = cursor.pgresult
                returned = result is not None and result.status == ExecStatus.TUPLES_OK
                rows.append(cast(list[Row], await cursor.fetchall()) if returned else [])
            return rows
        except psycopg.Error as error:
            raise _storage_error(error) from error
        finally:
            for cursor in cursors:
                await cursor.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        # One round trip: both statements in one simple query (the key is our own integer).
        await self._begin_locked()
        try:
            yield
        except BaseException:
            # Shielded so that a cancelled caller still leaves no transaction open.
            await asyncio.shield(self._end("ROLLBACK"))
            raise
        try:
            await asyncio.shield(self._end("COMMIT"))
        except Exception:
            if self.in_transaction:
                await asyncio.shield(self._end("ROLLBACK"))
            raise

    async def _begin_locked(self) -> None:
        try:
            await self.conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({int(self.lock_key)})")
        except BaseException as error:
            # (Cancelled while waiting for the lock, the transaction is open: end it all the same.)
            if self.in_transaction:
                await asyncio.shield(self._end("ROLLBACK"))
            if isinstance(error, psycopg.Error):
                raise _storage_error(error) from error
            raise

    async def _end(self, statement: str) -> None:
        if self.conn.closed:
            return
        await self.execute(statement)

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    async def close(self) -> None:
        await self.conn.close()


async def open_postgres(url: str, *, lock_name: str, schema: str | None = None, read_only: bool = False) -> PostgresConnection:
    """Connect to the database at `url`; with `schema`, our tables live in that schema (made if
    missing); `read_only` refuses every write on this connection. `lock_name` names the write lock
    its transactions take."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=_row_factory)
    except psycopg.Error as error:
        raise _storage_error(error) from error
    connection = PostgresConnection(conn, lock_key(lock_name))
    try:
        _configure(conn)
        # Plan every statement for the values it is given: a plan made once for any value (what
        # PostgreSQL settles on for a statement prepared and run often) can be a hundred times
        # slower for a word found in a quarter of a chat's memories than for a rare one.
        await conn.execute("SET plan_cache_mode = force_custom_plan")
        if schema is not None:
            if not read_only:
                await conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema)))
            await conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
        if read_only:
            await conn.execute("SET default_transaction_read_only = on")
    except psycopg.Error as error:
        await conn.close()
        raise _storage_error(error) from error
    except BaseException:
        await conn.close()
        raise
    return connection
