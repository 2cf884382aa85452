"""The storage seam: the small connection protocol every SQL home speaks, whatever the backend.

A `Connection` runs our SQL on SQLite (`core.storage.sqlite`) or PostgreSQL
(`core.storage.postgres`). Our SQL has one parameter style, SQLite's: `?` for positional
parameters, `:name` for named ones (a name may repeat); the PostgreSQL connection translates it
(`core.storage.paramstyle`). Rows are read by column name or by index (`Row`). Everything a
backend raises for a statement reaches callers as `StorageError` (`IntegrityError` for a broken
constraint), so no caller imports a driver.

Writes run inside `transaction()`: one writer at a time, as SQLite's `BEGIN IMMEDIATE` gives.
PostgreSQL has no database-wide write lock, so its connections take a transaction-level advisory
lock of their own at BEGIN (one per database, or per schema for the adapter's cache): several
processes on one PostgreSQL write one after another, so the order of the log's sequence numbers
is the order of commits, and every read-then-write inside a transaction (a chat's next memory id,
a counter) sees every earlier commit, exactly as on SQLite.
"""

from __future__ import annotations

import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

SqlParams = Sequence[Any] | Mapping[str, Any]  # positional (?) or named (:name) parameters


class Dialect(enum.Enum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Row(Protocol):
    """One result row: `row["column"]`, `row[0]`, `row.keys()`, `tuple(row)`, `dict(row)`."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...


class StorageError(Exception):
    """The database refused a statement or could not run it (the backend's own error is the cause)."""


class IntegrityError(StorageError):
    """A statement broke a constraint (a unique key, a foreign key, a CHECK)."""


class Connection(ABC):
    """One connection to one database, in autocommit mode outside `transaction()`."""

    dialect: Dialect

    @abstractmethod
    async def fetch_all(self, sql: str, params: SqlParams = ()) -> list[Row]:
        """Every row the statement returns (a write with RETURNING too)."""

    async def fetch_one(self, sql: str, params: SqlParams = ()) -> Row | None:
        """The first row the statement returns, or None."""
        return next(iter(await self.fetch_all(sql, params)), None)

    @abstractmethod
    async def execute(self, sql: str, params: SqlParams = ()) -> int:
        """Run a statement that returns no rows; the number of rows it changed."""

    @abstractmethod
    async def execute_many(self, sql: str, params: Iterable[SqlParams]) -> None:
        """Run one statement once per set of parameters."""

    async def fetch_together(self, statements: Sequence[tuple[str, SqlParams]]) -> list[list[Row]]:
        """Run the statements in order and return each one's rows (a write's RETURNING): a later one
        sees what an earlier one wrote, but cannot take its rows as parameters. PostgreSQL gets them
        all in one round trip; an error in one raises once they have run (or been skipped)."""
        return [await self.fetch_all(sql, params) for sql, params in statements]

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[None]:
        """A write transaction holding the database's write lock: committed when the block ends,
        rolled back if it raises (or is cancelled). Not re-entrant."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def is_postgres_url(location: object) -> bool:
    """Whether a database location names a PostgreSQL server (else it is a SQLite file)."""
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def shown_location(location: str) -> str:
    """A database location fit to print or log: a URL's password replaced by `***`."""
    return re.sub(r"^(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1***@", location)
