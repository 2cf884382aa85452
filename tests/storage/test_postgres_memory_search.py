"""Memory search on PostgreSQL (tsvector, GIN, the same chat-local BM25 and re-rank) finds what
SQLite's FTS5 finds: the same top results for the benchmark's player-like queries, and the
full-text index follows memories as they are recorded, retracted and restored."""

from __future__ import annotations

import random
from datetime import timedelta

from bench.memory_search import START, Vocabulary
from core.eventlog import open_database
from core.eventlog.events import CharacterRegistered
from core.eventlog.migrations import ENGINE_SCHEMA
from core.state import memory, world
from core.storage import Connection, open_connection

COPIED = ("characters", "chats", "memories", "memory_witnesses")
PROBES = 300
PLAYER = "@p:localhost"


async def _story(tmp_path, memories: int = 1500):
    """A SQLite story of `memories` memories written by the engine, a few of them retracted."""
    db = await open_database(tmp_path / "engine.sqlite3")
    vocabulary, rng = Vocabulary(7), random.Random(7)
    async with db.transaction() as tx:
        for name in ("ada", "bram"):
            await world.register_character(tx, CharacterRegistered(character_id=name, name=name.title()))
        await world.create_chat(tx, owner=PLAYER, host="ada", guest="bram", clock=START, chat_id="c")
        for n in range(memories):
            witnesses = [w for w in (PLAYER, "ada", "bram") if rng.random() < 0.7] or ["ada"]
            recorded = await memory.record_memory(tx, "c", vocabulary.memory_text(), witnesses,
                                                  significance=rng.choice((1, 2, 2, 3)),
                                                  story_time=START + timedelta(minutes=37 * n))
            if rng.random() < 0.03:
                await memory.retract_memory(tx, "c", recorded.memory_id)
    return db


async def _copy(db, conn: Connection) -> None:
    await ENGINE_SCHEMA.upgrade(conn)
    for table in COPIED:
        rows = [tuple(row) for row in await db.reader.fetch_all(f"SELECT * FROM {table}")]
        marks = ", ".join("?" * len(rows[0]))
        await conn.execute_many(f"INSERT INTO {table} VALUES ({marks})", rows)


async def test_postgres_finds_the_same_top_memories_as_sqlite(tmp_path, postgres_url):
    db = await _story(tmp_path)
    async with await open_connection(postgres_url) as conn:
        await _copy(db, conn)
        queries = [Vocabulary(11).query() for _ in range(PROBES)]
        same, compared = 0, 0
        differing = []
        for query in queries:
            for viewer in ("ada", PLAYER):
                on_sqlite = await memory.search_memories(db, "c", viewer, query, limit=8)
                on_postgres = await memory.search_memories(conn, "c", viewer, query, limit=8)
                compared += 1
                if [h.memory.memory_id for h in on_sqlite] == [h.memory.memory_id for h in on_postgres]:
                    same += 1
                    assert [round(h.score, 9) for h in on_sqlite] == [round(h.score, 9) for h in on_postgres]
                else:
                    differing.append(query)
        assert same == compared, f"same top 8 for {same} of {compared} searches; differing: {sorted(set(differing))[:20]}"
    await db.close()


async def test_the_postgres_index_holds_exactly_the_live_memories(tmp_path, postgres_url):
    db = await _story(tmp_path, memories=200)
    async with await open_connection(postgres_url) as conn:
        await _copy(db, conn)

        async def indexed() -> set[int]:
            return {row[0] for row in await conn.fetch_all("SELECT memory_id FROM memories_fts")}

        async def live() -> set[int]:
            return {row[0] for row in await conn.fetch_all("SELECT memory_id FROM memories WHERE retracted = 0")}

        assert await indexed() == await live() and len(await live()) < 200
        some = sorted(await live())[:5]
        await conn.execute(f"UPDATE memories SET retracted = 1 WHERE memory_id IN ({', '.join('?' * 5)})", some)
        assert await indexed() == await live() and not set(some) & await indexed()
        await conn.execute(f"UPDATE memories SET retracted = 0 WHERE memory_id IN ({', '.join('?' * 5)})", some)
        await conn.execute("UPDATE memories SET text = 'The lamplighter drowned the lantern.' WHERE memory_id = ?", (some[0],))
        assert await indexed() == await live()
        found = await memory.search_memories(conn, "c", "ada", "lamplighter drowned", limit=3)
        assert found and found[0].memory.memory_id == some[0]
        await conn.execute("DELETE FROM memory_witnesses")
        await conn.execute("DELETE FROM memories")
        assert await indexed() == set()
    await db.close()


async def test_a_search_of_summaries_alone_reads_the_summaries_not_every_memory(tmp_path, postgres_url):
    """The search of a character's own summaries (a few per scene) starts from the summaries of the
    chat, through their index: scanning every memory of every chat would grow with the database."""
    story = await _story(tmp_path)
    db = await open_database(postgres_url)
    try:
        await _copy(story, db.writer)
        for n in range(5):
            await memory.record_memory(db, "c", f"Scene {n}: the lamplighter kept the harbour lantern lit.", ["ada"],
                                       kind="summary", pov="ada")
        await db.writer.execute("ANALYZE")
        sent: list[tuple[str, object]] = []
        fetch_all = db.reader.fetch_all

        async def recording(sql, params=()):
            sent.append((sql, params))
            return await fetch_all(sql, params)

        db.reader.fetch_all = recording  # type: ignore[method-assign]
        found = await memory.search_memories(db, "c", "ada", "lamplighter lantern", only="summaries")
        del db.reader.fetch_all
        assert len(found) == 5 and all(hit.memory.kind == "summary" for hit in found)
        search, params = sent[-1]
        plan = "\n".join(row[0] for row in await db.reader.fetch_all(f"EXPLAIN {search}", params))
        assert "Seq Scan on memories " not in plan, plan
    finally:
        await db.close()
        await story.close()
