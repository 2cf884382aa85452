"""Moving the stories to another database: copy the event log, rebuild every projection by
replay, then check the two agree.

`move_stories(source, target)` is what `rpbot migrate` runs (a SQLite file to a PostgreSQL
database, usually). The source is never changed: a SQLite file is first copied (SQLite's backup
API, consistent even while it is in use) and the copy brought to the current schema. The target
must hold no events yet. The log is copied event for event, with its sequence numbers, payloads
and timestamps as they are; then, in the same transaction, every projection is built by
replaying it, so a failure leaves the target as it was.

The check compares every projection table row for row (`dump_projections`: each table ordered by
all its columns), the source's projections as the bot left them against the target's rebuilt
ones. The full-text index is the one thing that differs in kind between the backends (FTS5's
shadow tables, a tsvector table): it is checked on the target to hold exactly the live memories.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import StoryMoveError
from core.eventlog.db import Database, Readable, open_database, read_connection
from core.eventlog.log import rebuild_projections
from core.eventlog.migrations import PROJECTION_TABLES
from core.storage import Dialect, is_postgres_url, snapshot_sqlite
from core.storage.sql import identity_follows_copied_rows

COPY_BATCH = 2000
_EVENT_COLUMNS = "seq, kind, chat_id, payload, recorded_at"


@dataclass
class MoveReport:
    events: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # projection table -> rows at the target
    differences: list[str] = field(default_factory=list)  # empty: the two agree

    @property
    def agree(self) -> bool:
        return not self.differences


async def dump_projections(source: Readable) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every projection table, each table ordered by all its columns."""
    conn = read_connection(source)
    dump = {}
    for table in PROJECTION_TABLES:
        order = ", ".join(str(n) for n in range(1, len(await _columns(source, table)) + 1))
        dump[table] = [tuple(row) for row in await conn.fetch_all(f"SELECT * FROM {table} ORDER BY {order}")]
    return dump


async def _columns(source: Readable, table: str) -> list[str]:
    conn = read_connection(source)
    if conn.dialect is Dialect.SQLITE:
        return [row["name"] for row in await conn.fetch_all(f"PRAGMA table_info({table})")]
    rows = await conn.fetch_all(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?"
        " ORDER BY ordinal_position", (table,))
    return [row[0] for row in rows]


async def indexed_memories(db: Database) -> set[int]:
    """The memory ids the full-text index holds (read from the index itself: an FTS5 table with
    external content would answer a plain SELECT from the memories table)."""
    if db.dialect is Dialect.SQLITE:
        await db.writer.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.memories_fts_instances USING fts5vocab(main, memories_fts, instance)")
        return {row[0] for row in await db.writer.fetch_all("SELECT DISTINCT doc FROM temp.memories_fts_instances")}
    return {row[0] for row in await db.reader.fetch_all("SELECT memory_id FROM memories_fts")}


async def live_memories(source: Readable) -> set[int]:
    return {row[0] for row in await read_connection(source).fetch_all("SELECT memory_id FROM memories WHERE retracted = 0")}


async def move_stories(source: str | Path, target: str | Path) -> MoveReport:
    """Copy the stories at `source` (a SQLite file, or a PostgreSQL URL) to the empty database at
    `target`, rebuild its projections by replay and compare them with the source's."""
    scratch: Path | None = None
    if not is_postgres_url(source):
        scratch = await asyncio.to_thread(_snapshot, Path(source))
        source = scratch / "engine.sqlite3"
    try:
        from_db = await open_database(source)
        try:
            to_db = await open_database(target)
            try:
                return await _move(from_db, to_db)
            finally:
                await to_db.close()
        finally:
            await from_db.close()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _snapshot(source: Path) -> Path:
    """A scratch directory holding a copy of the SQLite file `source` as `engine.sqlite3`."""
    if not source.exists():
        raise StoryMoveError(f"no stories at {source}: the file does not exist")
    scratch = Path(tempfile.mkdtemp(prefix="rpbot-migrate-"))
    snapshot_sqlite(source, scratch / "engine.sqlite3")
    return scratch


async def _move(source: Database, target: Database) -> MoveReport:
    report = MoveReport()
    async with target.transaction() as tx:
        present = await tx.conn.fetch_one("SELECT count(*) FROM events")
        if present is not None and present[0]:
            raise StoryMoveError(f"the target already holds {present[0]} events: move the stories into an empty database")
        after = 0
        while True:
            rows = await source.reader.fetch_all(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, COPY_BATCH))
            if not rows:
                break
            await tx.conn.execute_many(f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?)", [tuple(r) for r in rows])
            report.events += len(rows)
            after = rows[-1][0]
        follow = identity_follows_copied_rows(target.dialect, "events", "seq")
        if follow is not None:
            await tx.conn.fetch_all(follow)
        await rebuild_projections(tx)
    if target.dialect is Dialect.POSTGRESQL:
        # Statistics for the planner now, not when autovacuum comes round to the new tables.
        await target.writer.execute("ANALYZE")
    expected, rebuilt = await dump_projections(source), await dump_projections(target)
    for table in PROJECTION_TABLES:
        report.rows[table] = len(rebuilt[table])
        if expected[table] != rebuilt[table]:
            report.differences.append(_difference(table, expected[table], rebuilt[table]))
    indexed, live = await indexed_memories(target), await live_memories(target)
    if indexed != live:
        report.differences.append(
            f"memories_fts: {len(indexed - live)} indexed memories are not live, {len(live - indexed)} live ones are not indexed")
    return report


def _difference(table: str, expected: list[tuple[object, ...]], rebuilt: list[tuple[object, ...]]) -> str:
    if len(expected) != len(rebuilt):
        return f"{table}: {len(expected)} rows at the source, {len(rebuilt)} rebuilt"
    first = next(i for i, (a, b) in enumerate(zip(expected, rebuilt, strict=True)) if a != b)
    return f"{table}: row {first + 1} differs: {expected[first]!r} at the source, {rebuilt[first]!r} rebuilt"
