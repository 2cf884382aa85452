"""The adapter's cache uses the engine's migration mechanism: numbered steps, a newer file refused."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from adapter.matrix.bot import hand_over_lines_an_older_rpbot_owed
from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import (
    ADAPTER_SCHEMA,
    RoomMeta,
    StateStore,
    get_room_meta,
    lines_an_older_rpbot_owed,
    message_showing_turn,
    set_room_meta,
)
from core.errors import SchemaVersionError
from core.eventlog.migrations import ENGINE_SCHEMA
from core.eventlog.schema import Schema
from core.storage import open_sqlite
from tests.adapter.matrix.test_dispatcher import Ctx, SlowEngine


def test_both_databases_are_versioned_by_the_same_mechanism() -> None:
    assert isinstance(ADAPTER_SCHEMA, Schema) and isinstance(ENGINE_SCHEMA, Schema)
    assert [m.version for m in ADAPTER_SCHEMA.migrations] == list(range(1, ADAPTER_SCHEMA.latest_version + 1))


async def test_a_new_cache_is_at_the_latest_version_and_reopens_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "adapter.sqlite3"
    store = await StateStore.open(path)
    await set_room_meta(store, RoomMeta("!room", RoomType.LOBBY, "@alice:localhost", "!space"))
    async with await open_sqlite(path) as conn:
        assert await ADAPTER_SCHEMA.version(conn) == ADAPTER_SCHEMA.latest_version
    await store.close()
    again = await StateStore.open(path)
    assert await get_room_meta(again, "!room") == RoomMeta("!room", RoomType.LOBBY, "@alice:localhost", "!space")
    await again.close()


async def test_a_cache_written_by_a_newer_rpbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "adapter.sqlite3"
    with closing(sqlite3.connect(path)) as conn:  # as an older rpbot's file: only PRAGMA user_version
        conn.execute(f"PRAGMA user_version = {ADAPTER_SCHEMA.latest_version + 1}")
    with pytest.raises(SchemaVersionError, match="adapter.sqlite3"):
        await StateStore.open(path)


async def test_an_older_cache_hands_its_owed_lines_to_the_engine_and_keeps_which_message_shows_which_turn(tmp_path: Path) -> None:
    """Before the engine owned answered lines, the cache kept `deliveries`: upgrading keeps the
    message of each delivered reply (so 🔄 on it still works), and the next start hands owed lines
    to the engine once, in one place; the cache keeps no copy of them after that."""
    path = tmp_path / "adapter.sqlite3"
    async with await open_sqlite(path) as conn:
        await ADAPTER_SCHEMA.upgrade(conn, to=3)
        await conn.execute(
            "INSERT INTO deliveries (source_event_id, room_id, chat_id, turn_id, text, reply_event_id, status) VALUES"
            " ('$old', '!story', 'chat-1', '12', 'Hello', '$reply', 'delivered'),"
            " ('$owed', '!story', 'chat-1', NULL, 'And then?', NULL, 'pending'),"
            " ('$failed', '!story', 'chat-1', NULL, 'Are you there?', NULL, 'failed')"
        )
    store = await StateStore.open(path)
    try:
        assert await message_showing_turn(store, 12) == "$reply"
        assert await lines_an_older_rpbot_owed(store) == [("$owed", "chat-1", "And then?")]
        await set_room_meta(store, RoomMeta("!story", RoomType.STORY, "@alice:localhost", "!space", "chat-1", "mx-1"))
        engine = SlowEngine()
        assert await hand_over_lines_an_older_rpbot_owed(store, engine) == 1  # type: ignore[arg-type]
        assert engine.owed() == ["And then?"]
        assert await lines_an_older_rpbot_owed(store) == []
        tables = await store.conn.fetch_all("SELECT name FROM sqlite_master WHERE name = 'lines_to_hand_over'")
        assert list(tables) == []  # the engine is the one truth of owed lines from now on
        assert await hand_over_lines_an_older_rpbot_owed(store, engine) == 0  # the next start has nothing to hand over
        dispatcher = Dispatcher(Ctx(store, engine))  # type: ignore[arg-type]
        assert await dispatcher.redeliver_pending() == 1
        await dispatcher.idle()
        assert [text for _, text, _, _ in engine.turns] == ["And then?"]
    finally:
        await store.close()


async def test_a_new_cache_has_nothing_to_hand_over_and_keeps_no_table_for_it_after_its_first_start(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "adapter.sqlite3")
    try:
        engine = SlowEngine()
        assert await hand_over_lines_an_older_rpbot_owed(store, engine) == 0  # type: ignore[arg-type]
        assert list(await store.conn.fetch_all("SELECT name FROM sqlite_master WHERE name = 'lines_to_hand_over'")) == []
    finally:
        await store.close()
