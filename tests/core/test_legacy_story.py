"""Stories written by an older rpbot open with today's code and replay to identical state.

`tests/data/legacy/engine-0.1.sqlite3` was written by rpbot 0.1 (see the README beside it): three
stories of two players with every event kind of that release. Opening a copy runs today's
migrations on it; replaying its log with today's projectors must then give exactly the tables the
migrations left, and the stories must read as they did.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from core.eventlog import EVENT_MODELS, clear_projections, open_database, replay
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
