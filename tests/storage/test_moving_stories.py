"""Moving the stories (what `rpbot migrate` runs): the log copied event for event, every
projection rebuilt by replay and found equal to the source's, the source left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.engine import Engine
from core.errors import StoryMoveError
from core.eventlog import EVENT_MODELS, open_database
from core.eventlog.transfer import move_stories
from core.state import digests, edges
from core.storage import open_connection
from tests.core.prompts.scripted import (
    play_group_scripted_story,
    play_long_scripted_story,
    play_scripted_story,
    scripted_llm,
)
from tests.core.story import test_story_properties as story_properties

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy" / "engine-0.1.sqlite3"
ILSE = (LEGACY.parents[1] / "ilse_varga_v3.json").read_text()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_rpbot_0_1_stories_move_and_agree_and_the_source_is_untouched(tmp_path):
    before = digest(LEGACY)
    report = await move_stories(LEGACY, tmp_path / "moved.sqlite3")
    assert report.agree, report.differences
    assert report.events > 300 and report.rows["turns"] > 100 and report.rows["memories"] > 50
    assert digest(LEGACY) == before and not Path(str(LEGACY) + "-wal").exists()


async def test_stories_never_move_into_a_database_that_has_some(tmp_path):
    target = tmp_path / "target.sqlite3"
    await move_stories(LEGACY, target)
    with pytest.raises(StoryMoveError, match="already holds"):
        await move_stories(LEGACY, target)
    with pytest.raises(StoryMoveError, match="does not exist"):
        await move_stories(tmp_path / "nothing.sqlite3", tmp_path / "other.sqlite3")


async def test_a_difference_is_named_by_table_and_row(tmp_path):
    source = tmp_path / "engine.sqlite3"
    await move_stories(LEGACY, source)
    db = await open_database(source)
    async with db.transaction() as tx:  # a projection the log no longer explains
        await tx.conn.execute("UPDATE chats SET title = 'Renamed by hand' WHERE chat_num = 1")
    await db.close()
    report = await move_stories(source, tmp_path / "moved.sqlite3")
    assert not report.agree
    assert report.differences[0].startswith("chats: row ") and "Renamed by hand" in report.differences[0]


async def test_rpbot_0_1_stories_move_into_postgresql_and_agree(postgres_url):
    report = await move_stories(LEGACY, postgres_url)
    assert report.agree, report.differences
    assert report.events > 300 and report.rows["turns"] > 100 and report.rows["memories"] > 50


async def _the_rarest_kinds(run: story_properties.Run) -> None:
    """A card shared by its owner, a memory forgotten, and the two compensations no step above
    happened to need (an edge cleared, a digest returned)."""
    engine, chat_id = run.engine, run.chat_id
    ilse = await engine.import_character(ILSE, owner=story_properties.OWNER)
    await engine.share_character(story_properties.OWNER, ilse.character_id)
    [remembered, *_] = await engine.recent_memories(chat_id, story_properties.HOST)
    await engine.forget_memory(chat_id, story_properties.HOST, remembered.memory_id)
    async with engine.db.transaction() as tx:
        await edges.set_edge(tx, chat_id, story_properties.HOST, story_properties.GUEST, affinity=1, trust=0)
        await edges.clear_edge(tx, chat_id, story_properties.HOST, story_properties.GUEST, "taken back")
        digest = await digests.create_digest(tx, chat_id, "They talked.", participants=[story_properties.HOST])
        await digests.consume_digest(tx, chat_id, digest.digest_id)
        await digests.return_digest(tx, chat_id, digest.digest_id)


async def test_stories_of_every_event_kind_move_into_postgresql_and_agree(tmp_path, postgres_url):
    """rpbot 0.1's file holds every event kind of its release; the scripted stories of the golden
    prompts and one of each step of the story property test (several players, characters coming and
    going, rounds, rolling summaries, fixes and take-backs) add the later ones."""
    source = tmp_path / "engine.sqlite3"
    await move_stories(LEGACY, source)
    for play_story in (play_scripted_story, play_long_scripted_story, play_group_scripted_story):
        engine = await Engine.open(source, scripted_llm())
        try:
            await play_story(engine)
        finally:
            await engine.close()
    run = await story_properties.start(source)
    try:
        for number, operation in enumerate(story_properties.OPERATIONS, start=1):
            await story_properties.play(run, number, operation, None)
        await story_properties.finish(run)
        await _the_rarest_kinds(run)
    finally:
        await run.engine.close()
    db = await open_database(source)
    kinds = {row[0] for row in await db.reader.fetch_all("SELECT DISTINCT kind FROM events")}
    await db.close()
    assert kinds == set(EVENT_MODELS), sorted(set(EVENT_MODELS) - kinds)
    report = await move_stories(source, postgres_url)
    assert report.agree, report.differences


async def test_stories_moved_into_postgresql_are_analyzed_for_the_planner(postgres_url):
    """PostgreSQL plans a query by its tables' statistics, which a fresh copy lacks until autovacuum
    comes round: the move gathers them, so the bot's first turns are planned on the real sizes."""
    await move_stories(LEGACY, postgres_url)
    async with await open_connection(postgres_url) as conn:
        rows = await conn.fetch_all("SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema()")
    assert {"events", "turns", "turn_witnesses", "memories", "memory_witnesses", "memories_fts"} <= {row[0] for row in rows}
