"""How a SQLite database's schema is versioned: a numbered, registered list of migrations.

Both of rpbot's databases use this one mechanism: `engine.sqlite3` (its steps are in
`core/eventlog/migrations.py`) and the adapter's cache (`adapter/matrix/store.py`).
Each step is registered in order; its number is its position in the list (1-based)
and is stored in SQLite's `PRAGMA user_version` in the same transaction as its DDL,
so a crash leaves the database at one version or the next, never in between.  A
database written by a newer rpbot (a version above the last step) is refused.

To change a schema, append a step at the end of its list; never edit one that shipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosqlite

from core.errors import SchemaVersionError

MigrationStep = Callable[[aiosqlite.Connection], Awaitable[None]]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    step: MigrationStep


async def schema_version(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("PRAGMA user_version")
    return int(next(iter(rows))[0])


async def run_statements(conn: aiosqlite.Connection, statements: Sequence[str]) -> None:
    """Run SQL statements one by one (executescript would COMMIT first)."""
    for statement in statements:
        await conn.execute_fetchall(statement)


class Schema:
    """The migrations of one database, in order."""

    def __init__(self, database: str) -> None:
        self.database = database  # the file's name, for messages
        self.migrations: list[Migration] = []

    @property
    def latest_version(self) -> int:
        return len(self.migrations)

    def migration(self, description: str) -> Callable[[MigrationStep], MigrationStep]:
        """Register the decorated coroutine as the next step."""

        def register(step: MigrationStep) -> MigrationStep:
            self.migrations.append(Migration(len(self.migrations) + 1, description, step))
            return step

        return register

    def statements(self, description: str, statements: Sequence[str]) -> None:
        """Register plain SQL statements as the next step."""

        async def step(conn: aiosqlite.Connection) -> None:
            await run_statements(conn, statements)

        self.migrations.append(Migration(len(self.migrations) + 1, description, step))

    async def upgrade(self, conn: aiosqlite.Connection) -> int:
        """Bring the database to the latest version; returns the version it ends at.

        `conn` must be in autocommit mode (isolation_level=None) and not shared yet.
        SchemaVersionError for a database newer than this code.
        """
        current = await schema_version(conn)
        if current > self.latest_version:
            raise SchemaVersionError(
                f"{self.database} has schema version {current}, newer than this rpbot "
                f"(knows up to {self.latest_version}): run the rpbot that wrote it"
            )
        for pending in self.migrations[current:]:
            await conn.execute_fetchall("BEGIN IMMEDIATE")
            try:
                await pending.step(conn)
                await conn.execute_fetchall(f"PRAGMA user_version = {pending.version:d}")
            except BaseException:
                await conn.execute_fetchall("ROLLBACK")
                raise
            await conn.execute_fetchall("COMMIT")
        return self.latest_version
