"""Fixtures and helpers for the engine-store tests: a fresh database, a small cast, table dumps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pytest

from core.engine import Engine
from core.eventlog import Database, open_database
from core.eventlog.events import CharacterRegistered
from core.eventlog.migrations import PROJECTION_TABLES
from core.state import world
from core.storage import Dialect

STORY_START = datetime(1890, 10, 3, 20, 0)
CAST = ("ada", "bram", "cora", "dov")
PLAYER = "@player:localhost"  # the owner of the `chat` fixture: its one player

# The tests taking `db` or `open_engine` run once on each backend; this runs one on SQLite only
# (for what only SQLite has: its pragmas, its files, FTS5's own index).
sqlite_only = pytest.mark.parametrize("engine_location", ["sqlite"], indirect=True)


@pytest.fixture
async def db(engine_location: Callable[[str], str]) -> AsyncIterator[Database]:
    """A fresh engine database, once on each backend (SQLite, then PostgreSQL)."""
    database = await open_database(engine_location("engine.sqlite3"))
    try:
        yield database
    finally:
        await database.close()


async def add_cast(target, names=CAST) -> None:
    for name in names:
        await world.register_character(target, CharacterRegistered(character_id=name, name=name.title()))


@pytest.fixture
async def chat(db: Database) -> world.Chat:
    """A chat hosted by 'ada' with guest 'bram'; the whole CAST is registered."""
    await add_cast(db)
    return await world.create_chat(
        db, owner=PLAYER, host="ada", guest="bram", clock=STORY_START, chat_id="chat-1"
    )


async def row_counts(db: Database) -> dict[str, int]:
    counts = {}
    for table in ("events", *PROJECTION_TABLES):
        rows = await db.reader.fetch_all(f"SELECT count(*) FROM {table}")
        counts[table] = rows[0][0]
    return counts


async def dump_projections(db: Database) -> dict[str, list[tuple]]:
    """Every row of every projection table (and the FTS index's rowids), in a stable order."""
    dump = {}
    for table in PROJECTION_TABLES:
        rows = await db.reader.fetch_all(f"SELECT * FROM {table} ORDER BY 1, 2")
        dump[table] = [tuple(row) for row in rows]
    dump["memories_fts"] = await dump_fts_index(db)
    return dump


async def dump_fts_index(db: Database) -> list[tuple]:
    """The full-text index itself, not the memories it points to: FTS5's (term, rowid, offset) on
    SQLite, each memory's tsvector on PostgreSQL."""
    if db.dialect is Dialect.POSTGRESQL:
        rows = await db.reader.fetch_all("SELECT memory_id, CAST(document AS TEXT) FROM memories_fts ORDER BY memory_id")
        return [tuple(row) for row in rows]
    await db.writer.execute(
        "CREATE VIRTUAL TABLE IF NOT EXISTS temp.memories_fts_instances USING fts5vocab(main, memories_fts, instance)"
    )
    rows = await db.writer.fetch_all(
        "SELECT term, doc, offset FROM temp.memories_fts_instances ORDER BY term, doc, offset"
    )
    return [tuple(row) for row in rows]


async def check_fts_index(db: Database) -> None:
    """The full-text index is internally sound and holds exactly the live (not retracted) memories."""
    if db.dialect is Dialect.POSTGRESQL:
        indexed = {row[0] for row in await db.reader.fetch_all("SELECT memory_id FROM memories_fts")}
    else:
        async with db.transaction() as tx:
            await tx.conn.execute("INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')")
        indexed = {doc for _, doc, _ in await dump_fts_index(db)}
    live = await db.reader.fetch_all("SELECT memory_id FROM memories WHERE retracted = 0")
    assert indexed == {r[0] for r in live}


@pytest.fixture
async def open_engine(engine_location: Callable[[str], str]):
    """`await open_engine(llm, name=...)`: an Engine on a fresh database (once on each backend),
    closed after the test."""
    engines: list[Engine] = []

    async def _open(llm, name: str = "engine.sqlite3", **kwargs) -> Engine:
        engine = await Engine.open(engine_location(name), llm, **kwargs)
        engines.append(engine)
        return engine

    yield _open
    for engine in engines:
        await engine.close()
