"""The events that take things back, as the log and its projections hold them: withdrawn turns,
edited lines, continued replies, withdrawn scenes, returned digests, and the clock's history."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import IllegalTransitionError
from core.eventlog import open_database, replay
from core.eventlog.migrations import ENGINE_SCHEMA
from core.state import lines, turns, world
from core.state.rows import fetch_all
from core.storage import open_sqlite
from tests.core.conftest import STORY_START, dump_projections


async def test_a_withdrawn_turn_is_shown_nowhere_and_a_reply_under_its_source_takes_its_place(db, chat) -> None:
    line, _ = await turns.record_turn(db, chat.chat_id, "user", "you", "Hello.", source_id="$1", speaker_name="Tobin")
    first, _ = await turns.record_turn(db, chat.chat_id, "assistant", "ada", "Hi.", source_id="$1#reply")
    second, _ = await turns.record_turn(db, chat.chat_id, "assistant", "ada", "Hey.", supersedes=first.turn_id)
    for take in (first, second):
        await turns.withdraw_turn(db, chat.chat_id, take.turn_id)
    assert [t.text for t in await turns.recent_turns(db, chat.chat_id)] == ["Hello."]
    assert await turns.takes(db, second.turn_id) == []
    assert (await turns.get_turn(db, line.turn_id)).speaker_name == "Tobin"

    again, created = await turns.record_turn(db, chat.chat_id, "assistant", "ada", "Good day.", source_id="$1#reply")
    assert created and again.sibling_group == first.sibling_group and again.is_shown
    assert [t.text for t in await turns.takes(db, again.turn_id)] == ["Good day."]
    with pytest.raises(IllegalTransitionError):  # a withdrawn take is never shown again
        await turns.show_sibling(db, chat.chat_id, again.turn_id, first.turn_id)


async def test_an_edited_line_reads_anew_and_is_owed_an_answer_again(db, chat) -> None:
    await lines.receive_line(db, chat.chat_id, "$1", "Helo.", chat.owner)
    line, _ = await turns.record_turn(db, chat.chat_id, "user", "you", "Helo.", source_id="$1")
    await lines.answer_line(db, chat.chat_id, "$1")
    await turns.edit_turn(db, chat.chat_id, line.turn_id, "Hello.")
    assert (await turns.require_turn(db, line.turn_id)).text == "Hello."
    assert [(o.source_id, o.text) for o in await lines.owed_lines(db)] == [("$1", "Hello.")]
    reply, _ = await turns.record_turn(db, chat.chat_id, "assistant", "ada", "Hi")
    with pytest.raises(IllegalTransitionError):
        await turns.edit_turn(db, chat.chat_id, reply.turn_id, "Bye")  # only a player's line is edited
    await turns.continue_turn(db, chat.chat_id, reply.turn_id, " there.", truncated=False)
    assert (await turns.require_turn(db, reply.turn_id)).text == "Hi there."


async def test_a_scene_is_withdrawn_only_once_it_shows_no_turn(db, chat) -> None:
    scene = await world.open_scene(db, chat.chat_id, present=["you", "ada"])
    line, _ = await turns.record_turn(db, chat.chat_id, "user", "you", "Hello.")
    with pytest.raises(IllegalTransitionError):
        await world.withdraw_scene(db, chat.chat_id, scene.scene_id)
    await turns.withdraw_turn(db, chat.chat_id, line.turn_id)
    await world.withdraw_scene(db, chat.chat_id, scene.scene_id)
    assert await world.current_scene(db, chat.chat_id) is None and await world.list_scenes(db, chat.chat_id) == []


async def test_the_clock_keeps_its_history_and_older_stories_get_theirs_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "engine.sqlite3"
    async with await open_sqlite(path) as conn:
        history = next(m for m in ENGINE_SCHEMA.migrations if m.description.startswith("taking turns back"))
        await ENGINE_SCHEMA.upgrade(conn, to=history.version - 1)  # the schema before the clock's history
        clocks = [STORY_START, STORY_START + timedelta(hours=2), STORY_START + timedelta(days=1)]
        events = [("character_registered", None, {"character_id": "ada", "name": "Ada"}),
                  ("chat_created", "c", {"chat_id": "c", "owner": "@p:hs", "host": "ada", "clock": clocks[0].isoformat()})]
        events += [("clock_set", "c", {"chat_id": "c", "clock": clock.isoformat()}) for clock in clocks[1:]]
        for seq, (kind, chat_id, payload) in enumerate(events, start=1):
            await conn.execute(
                "INSERT INTO events (seq, kind, chat_id, payload, recorded_at) VALUES (?, ?, ?, ?, 0)",
                (seq, kind, chat_id, json.dumps(payload)),
            )
    db = await open_database(path)
    try:
        migrated = [tuple(r) for r in await fetch_all(db, "SELECT * FROM clock_changes ORDER BY seq")]
        assert migrated == [(3, "c", "1890-10-03T20:00:00", "1890-10-03T22:00:00"),
                            (4, "c", "1890-10-03T22:00:00", "1890-10-04T20:00:00")]
        await replay(db)
        assert (await dump_projections(db))["clock_changes"] == migrated
        assert await world.clock_before_change(db, "c", 5) == clocks[1]
    finally:
        await db.close()
