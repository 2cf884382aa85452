"""Memory events added for long stories: a memory forgotten by one witness, and what a summary covers
(a scene summary written before the field existed is still a scene summary, by migration and by replay)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import InvalidPayloadError, MemoryNotFoundError
from core.eventlog import open_database, replay
from core.eventlog.migrations import ENGINE_SCHEMA
from core.state import memory
from core.state.rows import fetch_all
from core.storage import open_sqlite
from tests.core.conftest import PLAYER


async def test_a_forgotten_memory_is_gone_for_that_witness_only(db, chat) -> None:
    kept = await memory.record_memory(db, "chat-1", "Bram hid the salt under the boat.", [PLAYER, "ada", "bram"])
    await memory.forget_memory(db, "chat-1", kept.memory_id, "ada")
    assert [h.memory.memory_id for h in await memory.search_memories(db, "chat-1", "bram", "salt")] == [kept.memory_id]
    assert await memory.search_memories(db, "chat-1", "ada", "salt") == []
    assert await memory.recent_memories_for(db, "chat-1", "ada") == []
    with pytest.raises(MemoryNotFoundError, match="does not remember it"):
        await memory.forget_memory(db, "chat-1", kept.memory_id, "ada")
    await replay(db)
    assert (await memory.require_memory(db, kept.memory_id)).witnesses == tuple(sorted(("bram", PLAYER)))


async def test_only_a_summary_says_what_it_covers(db, chat) -> None:
    with pytest.raises(InvalidPayloadError):
        await memory.record_memory(db, "chat-1", "A line.", ["ada"], summary_of="part")
    with pytest.raises(InvalidPayloadError):
        await memory.record_memory(db, "chat-1", "A part.", ["ada"], kind="summary", pov="ada", summary_of="part",
                                   covers=(9, 3))


async def test_a_summary_recorded_before_the_field_is_a_scene_summary(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    async with await open_sqlite(path) as conn:
        await ENGINE_SCHEMA.upgrade(conn, to=8)  # the schema before rolling summaries
        await conn.execute(
            """INSERT INTO characters VALUES ('ada', 'Ada', '', '', '', '', '', '', '', '', '[]', '[]', '', '', 'manual',
               NULL, 1)""")
        await conn.execute(
            "INSERT INTO chats VALUES ('c', 1, '@p:hs', 'ada', NULL, 'Ada', '1890-10-03T20:00:00', 2, '')")
        await conn.execute(
            """INSERT INTO memories (memory_id, chat_id, kind, pov, text, significance, story_time, recorded_seq)
               VALUES (4294967297, 'c', 'summary', 'ada', 'I lit the lamp.', 3, '1890-10-03T20:00:00', 3)""")
        await conn.execute(
            "INSERT INTO events (seq, kind, chat_id, payload, recorded_at) VALUES (3, 'memory_recorded', 'c', ?, 0)",
            (json.dumps({"chat_id": "c", "text": "I lit the lamp.", "witnesses": ["ada"], "significance": 3,
                         "memory_kind": "summary", "pov": "ada"}),),
        )
    db = await open_database(path)
    try:
        assert [tuple(r) for r in await fetch_all(db, "SELECT kind, summary_of FROM memories")] == [("summary", "scene")]
    finally:
        await db.close()
