"""Stories written by an older rpbot open with today's code and replay to identical state.

`tests/data/legacy/engine-0.1.sqlite3` was written by rpbot 0.1 (see the README beside it): three
stories of two players with every event kind of that release. Opening a copy runs today's
migrations on it; replaying its log with today's projectors must then give exactly the tables the
migrations left, and the stories must read as they did: their one player, "you" in the log, is
each story's owner everywhere (turns, witnesses, memories, edges, scenes, lines, exports, prompts).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

from core.engine import Engine
from core.eventlog import EVENT_MODELS, clear_projections, open_database, replay
from core.llm import FakeLLM
from tests.core.conftest import check_fts_index, dump_projections

LEGACY = Path(__file__).resolve().parent.parent / "data" / "legacy" / "engine-0.1.sqlite3"


async def test_a_story_database_of_rpbot_0_1_has_every_event_kind_of_its_release(tmp_path: Path):
    copy = tmp_path / "engine.sqlite3"
    shutil.copy(LEGACY, copy)
    db = await open_database(copy)
    try:
        kinds = {row[0] for row in await db.reader.fetch_all("SELECT DISTINCT kind FROM events")}
    finally:
        await db.close()
    assert len(kinds) == 32 and kinds <= set(EVENT_MODELS)


async def test_a_story_database_of_rpbot_0_1_replays_to_the_state_its_migrations_give(tmp_path: Path):
    copy = tmp_path / "engine.sqlite3"
    shutil.copy(LEGACY, copy)
    db = await open_database(copy)
    try:
        migrated = await dump_projections(db)
        assert len(migrated["turns"]) > 100 and len(migrated["memories"]) > 50
        async with db.transaction() as tx:
            await clear_projections(tx)
        await replay(db)
        assert await dump_projections(db) == migrated
        await check_fts_index(db)
    finally:
        await db.close()


def _raw(sql: str) -> list[tuple]:
    """Rows of the fixture as rpbot 0.1 wrote it (opened immutable: no journal files beside it, nothing changed)."""
    with closing(sqlite3.connect(f"file:{LEGACY}?immutable=1", uri=True)) as raw:
        return raw.execute(sql).fetchall()


async def test_the_one_player_you_of_an_older_story_is_its_owner_everywhere(tmp_path: Path):
    copy = tmp_path / "engine.sqlite3"
    shutil.copy(LEGACY, copy)
    fake = FakeLLM({"narrate": "Wren nods.", "addressee": {"speaker": "wren-halloway"}, "lifecycle": {},
                    "relationship": {}})
    engine = await Engine.open(copy, fake)
    try:
        owners = dict(_raw("SELECT chat_id, owner FROM chats"))
        you_said = dict(_raw("SELECT chat_id, count(*) FROM turns WHERE speaker = 'you' GROUP BY chat_id"))
        you_remember = dict(_raw("""SELECT m.chat_id, count(*) FROM memory_witnesses w JOIN memories m USING (memory_id)
                                    WHERE w.witness = 'you' GROUP BY m.chat_id"""))
        assert you_said and you_remember

        async def rows(sql: str, *params) -> list[tuple]:
            return [tuple(r) for r in await engine.db.reader.fetch_all(sql, params)]

        for table, column in (("turns", "speaker"), ("turn_witnesses", "witness"), ("memory_witnesses", "witness"),
                              ("edges", "from_id"), ("edges", "to_id"), ("edge_changes", "to_id"), ("lines", "player")):
            assert await rows(f"SELECT 1 FROM {table} WHERE {column} = 'you'") == [], (table, column)
        assert await rows("SELECT 1 FROM scenes, json_each(scenes.present) WHERE value = 'you'") == []
        for chat_id, owner in owners.items():
            said = await rows("SELECT count(*) FROM turns WHERE chat_id = ? AND speaker = ?", chat_id, owner)
            assert said == [(you_said[chat_id],)]
            remembered = await rows("""SELECT count(*) FROM memory_witnesses w JOIN memories m USING (memory_id)
                                       WHERE m.chat_id = ? AND w.witness = ?""", chat_id, owner)
            assert remembered == [(you_remember[chat_id],)]
            unwitnessed = await rows("""SELECT count(*) FROM turns t WHERE t.chat_id = ? AND NOT EXISTS (
                                          SELECT 1 FROM turn_witnesses w WHERE w.turn_id = t.turn_id AND w.witness = ?)""",
                                     chat_id, owner)
            assert unwitnessed == [(0,)]  # the one player witnessed every turn of their story
            [player] = await engine.players(chat_id)
            assert (player.player_id, player.is_owner, player.active) == (owner, True, True)

        ana = "@ana:localhost"
        [story] = [c for c, o in owners.items() if o == ana and "salt thief" in (await engine.export_story(c)).title]
        assert ("odile-marchetti", ana) in await rows("SELECT from_id, to_id FROM edges WHERE chat_id = ?", story)
        scenes = await rows("SELECT present FROM scenes WHERE chat_id = ? AND kind = 'main'", story)
        assert all(json.loads(present)[0] == ana for (present,) in scenes)
        assert [(o.source_id, o.player) for o in await engine.owed_lines()] == [("$ana-owed", ana)]
        exported = await engine.export_story(story)
        assert {t.speaker_name for t in exported.turns if t.role == "user"} == {"Ana Reyes"}
        assert [p.name for p in exported.players] == ["Ana Reyes"]
        assert (await engine.search_memory(story, "you", "harbour"))  # the owner's memories, asked as "you"
        imported = {c.character_id: c for c in await engine.list_characters(player="@newcomer:localhost")}
        assert imported["maren-ashdown"].owner is None  # cards imported before players owned theirs: everyone's

        # A prompt built on the old story names its player as before: one player, by their persona.
        prompt = await engine.next_prompt(story, "Where is the salt?")
        system = prompt.messages[0]["content"]
        assert "in an ongoing roleplay with Ana Reyes," in system and "User: Ana Reyes" in system
        assert "- Ana Reyes (the player)" in system and "Ana Reyes's persona: A cartographer" in system
        assert prompt.stop[0] == "\nAna Reyes:" and "Ana Reyes: Where is the salt?" in prompt.messages[-1]["content"]
        assert "you" not in [m["content"].split(":", 1)[0].strip().lower() for m in prompt.messages[1:]]
        updates = [u async for u in engine.post_turn(story, "Wren, where is the salt?", "$new")]
        assert updates[-1].answering == (ana,) and updates[-1].text == "Wren nods."
    finally:
        await engine.close()
