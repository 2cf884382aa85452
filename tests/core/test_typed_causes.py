"""Causes are typed columns: what a reply changed (edges, world events) and what a scene close
derived (threads) are found by id, and events written before the columns existed keep their causes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.eventlog import open_database, replay
from core.eventlog.migrations import ENGINE_SCHEMA
from core.state import edges
from core.state.rows import fetch_all
from core.storage import open_sqlite
from tests.core.conftest import PLAYER


async def test_an_edge_change_names_the_reply_that_caused_it(db, chat) -> None:
    await edges.adjust_edge(db, "chat-1", "ada", PLAYER, affinity_delta=1, reason="an exchange", cause_turn_id=7)
    await edges.adjust_edge(db, "chat-1", "ada", PLAYER, affinity_delta=1, reason="by hand")
    caused = await edges.edge_changes_caused_by(db, "chat-1", 7)
    assert [(c.from_id, c.to_id) for c in caused] == [("ada", PLAYER)]
    assert await edges.edge_changes_caused_by(db, "chat-1", 8) == []


async def test_an_older_edge_event_keeps_its_cause_through_a_replay(db, chat) -> None:
    """Before `cause_turn_id` existed the turn was named in the reason ("turn:<id>; ...")."""
    async with db.transaction() as tx:
        await tx.conn.fetch_all(
            "INSERT INTO events (kind, chat_id, payload, recorded_at) VALUES ('edge_set', 'chat-1', ?, ?)",
            (json.dumps({"chat_id": "chat-1", "from_id": "ada", "to_id": "you", "affinity": 3, "trust": 0,
                         "summary": "", "reason": "turn:12; an exchange with the player"}), time.time()),
        )
    await replay(db)
    assert [(c.from_id, c.to_id) for c in await edges.edge_changes_caused_by(db, "chat-1", 12)] == [("ada", PLAYER)]


async def test_the_migration_backfills_causes_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    async with await open_sqlite(path) as conn:
        await ENGINE_SCHEMA.upgrade(conn, to=4)  # the schema as it was before typed causes
        await conn.execute(
            "INSERT INTO events (seq, kind, chat_id, payload, recorded_at) VALUES (40, 'edge_set', 'c', ?, 0)",
            (json.dumps({"chat_id": "c", "from_id": "ada", "to_id": "you", "affinity": 1, "trust": 0,
                         "summary": "", "reason": "turn:39; an exchange with the player"}),),
        )
        await conn.execute(
            "INSERT INTO events (seq, kind, chat_id, payload, recorded_at) VALUES (41, 'thread_opened', 'c', ?, 0)",
            (json.dumps({"chat_id": "c", "title": "The lamp", "summary": "It flickers.", "cause_scene_id": 3}),),
        )
        await conn.execute(
            "INSERT INTO events (seq, kind, chat_id, payload, recorded_at) VALUES (42, 'world_event_transitioned', 'c', ?, 0)",
            (json.dumps({"chat_id": "c", "world_event_id": 30, "to": "started", "cause_turn_id": 39}),),
        )
    db = await open_database(path)
    try:
        assert [tuple(r) for r in await fetch_all(db, "SELECT seq, cause_turn_id FROM edge_changes")] == [(40, 39)]
        rows = await fetch_all(db, "SELECT thread_id, kind, title, cause_scene_id FROM thread_changes")
        assert [tuple(r) for r in rows] == [(41, "opened", "The lamp", 3)]
        rows = await fetch_all(db, "SELECT world_event_id, status, is_undo, cause_turn_id FROM world_event_changes")
        assert [tuple(r) for r in rows] == [(30, "started", 0, 39)]
    finally:
        await db.close()
