"""Moving the stories (what `rpbot migrate` runs): the log copied event for event, every
projection rebuilt by replay and found equal to the source's, the source left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.errors import StoryMoveError
from core.eventlog import open_database
from core.eventlog.transfer import move_stories

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy" / "engine-0.1.sqlite3"


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
