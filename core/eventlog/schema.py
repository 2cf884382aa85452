"""How a database's schema is versioned: a numbered, registered list of migrations.

Both of rpbot's databases use this one mechanism, on SQLite and on PostgreSQL alike: the
engine's (its steps are in `core/eventlog/migrations.py`) and the adapter's cache
(`adapter/matrix/store.py`). Each step is registered in order; its number is its position in the
list (1-based). The version a database is at is kept in the table `schema_versions` (one row per
schema, by name), written in the same transaction as the step's DDL, so a crash leaves the
database at one version or the next, never in between. Each step runs in a write transaction of
its own (on PostgreSQL under the database's write lock, so two processes starting at once migrate
one after the other) and is given the connection, whose `dialect` it may ask. A database written
by a newer rpbot (a version above the last step) is refused.

SQLite files from before the table existed kept their version in `PRAGMA user_version`: it is
carried over into the table. The pragma is still written at every step, so an older rpbot, which
reads only the pragma, refuses a file a newer one has moved on.

The early steps were written for SQLite only. A new PostgreSQL database starts instead from its
`baseline`: the whole schema as it stands at that version, in PostgreSQL's dialect; the steps after
it run on both backends. To change a schema, append a step at the end of its list (written for
both dialects); never edit one that shipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.errors import SchemaVersionError
from core.storage import Connection, Dialect

MigrationStep = Callable[[Connection], Awaitable[None]]
VERSIONS_TABLE = "schema_versions"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    step: MigrationStep


@dataclass(frozen=True)
class Baseline:
    """The whole schema at `version`, for a new database of `dialect` (no step up to it runs there)."""

    version: int
    dialect: Dialect
    statements: tuple[str, ...]


async def run_statements(conn: Connection, statements: Sequence[str]) -> None:
    """Run SQL statements one by one, inside the step's transaction."""
    for statement in statements:
        await conn.execute(statement)


class Schema:
    """The migrations of one database, in order."""

    def __init__(self, name: str, sqlite_file: str) -> None:
        self.name = name  # its row in schema_versions
        self.sqlite_file = sqlite_file  # for messages: the file it lives in on SQLite
        self.migrations: list[Migration] = []
        self.baselines: dict[Dialect, Baseline] = {}

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

        async def step(conn: Connection) -> None:
            await run_statements(conn, statements)

        self.migrations.append(Migration(len(self.migrations) + 1, description, step))

    def baseline(self, dialect: Dialect, version: int, statements: Sequence[str]) -> None:
        """A new database of `dialect` starts from `statements`: the schema as it stands at `version`."""
        self.baselines[dialect] = Baseline(version, dialect, tuple(statements))

    async def version(self, conn: Connection) -> int:
        """The version the database is at (0: a new database)."""
        if not await _has_versions_table(conn):
            return await _legacy_version(conn)
        row = await conn.fetch_one(f"SELECT version FROM {VERSIONS_TABLE} WHERE name = ?", (self.name,))
        return 0 if row is None else int(row[0])

    async def upgrade(self, conn: Connection, *, to: int | None = None) -> int:
        """Bring the database to the latest version (or to version `to`, for tests that build an
        older database); returns the version it ends at. SchemaVersionError for a database newer
        than this code. `conn` must not be shared yet."""
        target = self.latest_version if to is None else to
        while True:
            async with conn.transaction():
                current = await self._version_for_update(conn)
                if current > self.latest_version:
                    raise SchemaVersionError(
                        f"{self._where(conn)} has schema version {current}, newer than this rpbot "
                        f"(knows up to {self.latest_version}): run the rpbot that wrote it"
                    )
                if current >= target:
                    return current
                baseline = self.baselines.get(conn.dialect)
                if baseline is not None and current == 0 and baseline.version <= target:
                    await run_statements(conn, baseline.statements)
                    reached = baseline.version
                elif baseline is not None and current < baseline.version:
                    raise SchemaVersionError(
                        f"{self._where(conn)} is at schema version {current}, before this backend's first ({baseline.version})"
                    )
                else:
                    await self.migrations[current].step(conn)
                    reached = current + 1
                await self._set_version(conn, reached)

    def _where(self, conn: Connection) -> str:
        return self.sqlite_file if conn.dialect is Dialect.SQLITE else f"the {self.name} schema in PostgreSQL"

    async def _version_for_update(self, conn: Connection) -> int:
        if not await _has_versions_table(conn):
            carried = await _legacy_version(conn)
            await conn.execute(f"CREATE TABLE {VERSIONS_TABLE} (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            await conn.execute(f"INSERT INTO {VERSIONS_TABLE} (name, version) VALUES (?, ?)", (self.name, carried))
            return carried
        return await self.version(conn)

    async def _set_version(self, conn: Connection, version: int) -> None:
        await conn.execute(
            f"INSERT INTO {VERSIONS_TABLE} (name, version) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET version = excluded.version",
            (self.name, version),
        )
        if conn.dialect is Dialect.SQLITE:
            await conn.execute(f"PRAGMA user_version = {version:d}")


async def _has_versions_table(conn: Connection) -> bool:
    if conn.dialect is Dialect.SQLITE:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = "SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    return await conn.fetch_one(sql, (VERSIONS_TABLE,)) is not None


async def _legacy_version(conn: Connection) -> int:
    """A SQLite file's version from before the table (`PRAGMA user_version`); 0 elsewhere."""
    if conn.dialect is not Dialect.SQLITE:
        return 0
    row = await conn.fetch_one("PRAGMA user_version")
    return 0 if row is None else int(row[0])
