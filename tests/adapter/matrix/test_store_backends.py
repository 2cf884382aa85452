"""The adapter's cache on both backends: every read and write of `adapter.matrix.store` alike on a
SQLite file and in PostgreSQL, where each bot account's cache is a schema of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.matrix.room_types import RoomType
from adapter.matrix.store import (
    ADAPTER_SCHEMA,
    CacheNotReadyError,
    MemoryList,
    RoomMeta,
    StateStore,
    UserMeta,
    add_room_player,
    all_room_meta,
    all_room_players,
    all_user_meta,
    character_of_message,
    chat_id_of_platform_chat,
    forget_undecrypted,
    get_room_meta,
    get_sync_token,
    get_uploaded_media,
    get_user_meta,
    keep_undecrypted,
    lines_an_older_rpbot_owed,
    memory_list,
    message_showing_turn,
    next_platform_chat_id,
    raise_counter_to,
    record_reply_message,
    remove_room_player,
    reply_message_for,
    room_players,
    rooms_of_user,
    set_memory_list,
    set_room_meta,
    set_room_players,
    set_sync_token,
    set_uploaded_media,
    set_user_meta,
    story_room_of_chat,
    turn_of_message,
    undecrypted_events,
)
from adapter.matrix.store_schema import adapter_schema_name
from core.storage import StorageError, is_postgres_url

BOT = "@rpbot:localhost"
ALICE = "@alice:localhost"


@pytest.fixture
def cache_location(database_location: str) -> str:
    """The cache's location once per backend (a PostgreSQL database, or a SQLite file)."""
    return database_location


async def test_every_read_and_write_of_the_cache_alike_on_both_backends(cache_location: str) -> None:
    store = await StateStore.open(cache_location, account=BOT)
    try:
        await set_user_meta(store, UserMeta(ALICE, "!space", "!lobby"))
        await set_user_meta(store, UserMeta(ALICE, "!space", "!lobby2"))
        assert await get_user_meta(store, ALICE) == UserMeta(ALICE, "!space", "!lobby2")
        assert await all_user_meta(store) == {ALICE: UserMeta(ALICE, "!space", "!lobby2")}

        rooms = [
            RoomMeta("!zeta", RoomType.SPACE, ALICE),
            RoomMeta("!alpha", RoomType.LOBBY, ALICE, "!zeta"),
            RoomMeta("!mid", RoomType.STORY, ALICE, "!zeta", "chat-1", "mx-1", rounds=True),
        ]
        for room in rooms:
            await set_room_meta(store, room)
        await set_room_meta(store, RoomMeta("!other", RoomType.INVITE, "@bob:localhost"))
        assert await rooms_of_user(store, ALICE) == rooms  # in the order they were first written
        assert await get_room_meta(store, "!mid") == rooms[2]
        assert await story_room_of_chat(store, "chat-1") == rooms[2]
        assert set(await all_room_meta(store)) == {"!zeta", "!alpha", "!mid", "!other"}

        assert [await next_platform_chat_id(store) for _ in range(2)] == ["mx-1", "mx-2"]
        await raise_counter_to(store, "platform_chat_id", 7)
        await raise_counter_to(store, "platform_chat_id", 3)  # never lowered
        assert await next_platform_chat_id(store) == "mx-8"

        assert await add_room_player(store, "!mid", "@bob:localhost") is True
        assert await add_room_player(store, "!mid", "@bob:localhost") is False
        assert await room_players(store, "!mid") == {"@bob:localhost"}
        await set_room_players(store, "!mid", frozenset({"@carol:localhost", "@dave:localhost"}))
        assert await all_room_players(store) == {"!mid": {"@carol:localhost", "@dave:localhost"}}
        assert await remove_room_player(store, "!mid", "@carol:localhost") is True
        assert await remove_room_player(store, "!mid", "@carol:localhost") is False

        assert await get_sync_token(store) is None
        await set_sync_token(store, "s1")
        await set_sync_token(store, "s2")
        assert await get_sync_token(store) == "s2"
        await set_uploaded_media(store, "abc", "mxc://localhost/abc")
        assert await get_uploaded_media(store, "abc") == "mxc://localhost/abc"

        await record_reply_message(store, "$line", "ada", "$reply")
        await record_reply_message(store, "$line", "ada", "$reply", turn_id=12)
        await record_reply_message(store, "$line", "ada", "$reply")  # a later write without the turn keeps it
        await record_reply_message(store, "$regen", "bob", "$reply", turn_id=14)
        assert await reply_message_for(store, "$line", "ada") == "$reply"
        assert await character_of_message(store, "$reply") == "bob"  # the newest reply the message shows
        assert await message_showing_turn(store, 12) == "$reply"
        assert await turn_of_message(store, "$reply") == 14
        assert await turn_of_message(store, "$nothing") is None

        assert await keep_undecrypted(store, "!mid", "$late", "{}", 2.5) is True
        assert await keep_undecrypted(store, "!mid", "$late", "{}", 3.5) is False
        assert await keep_undecrypted(store, "!mid", "$early", "{}", 1.5) is True
        assert await undecrypted_events(store) == [("!mid", "$early", "{}"), ("!mid", "$late", "{}")]
        await forget_undecrypted(store, "$early")
        assert [event for _, event, _ in await undecrypted_events(store)] == ["$late"]

        shown = MemoryList("!mid", ALICE, "chat-1", "ada", "Ada", (5, 3, 9))
        await set_memory_list(store, shown)
        assert await memory_list(store, "!mid", ALICE) == shown
        assert await memory_list(store, "!mid", "@bob:localhost") is None
        assert await lines_an_older_rpbot_owed(store) == []
    finally:
        await store.close()

    again = await StateStore.open(cache_location, account=BOT)  # reopened: every row is still there
    try:
        assert await rooms_of_user(again, ALICE) == rooms
        assert await next_platform_chat_id(again) == "mx-9"
    finally:
        await again.close()
    location: str | Path = Path(cache_location) if not is_postgres_url(cache_location) else cache_location
    assert await chat_id_of_platform_chat(location, BOT, "mx-1") == "chat-1"
    assert await chat_id_of_platform_chat(location, BOT, "mx-404") is None


async def test_a_read_only_cache_reads_and_refuses_writes(cache_location: str) -> None:
    with pytest.raises(CacheNotReadyError, match="start the bot once first"):
        await StateStore.open(cache_location, account=BOT, read_only=True)
    store = await StateStore.open(cache_location, account=BOT)
    await set_room_meta(store, RoomMeta("!lobby", RoomType.LOBBY, ALICE))
    await store.close()
    beside = sorted(Path(cache_location).parent.iterdir()) if not is_postgres_url(cache_location) else []
    reader = await StateStore.open(cache_location, account=BOT, read_only=True)
    try:
        assert await get_room_meta(reader, "!lobby") == RoomMeta("!lobby", RoomType.LOBBY, ALICE)
        with pytest.raises(StorageError):
            await set_sync_token(reader, "s9")
    finally:
        await reader.close()
    if beside:
        assert sorted(Path(cache_location).parent.iterdir()) == beside  # no -wal or -shm file made beside it


async def test_two_bot_accounts_keep_apart_caches_in_one_postgresql_database(postgres_url: str) -> None:
    first = await StateStore.open(postgres_url, account="@rpbot:localhost")
    second = await StateStore.open(postgres_url, account="@rpbot2:localhost")
    try:
        await set_room_meta(first, RoomMeta("!a", RoomType.LOBBY, ALICE))
        await set_sync_token(first, "first-token")
        assert await next_platform_chat_id(first) == "mx-1"
        assert await all_room_meta(second) == {}
        assert await get_sync_token(second) is None
        assert await next_platform_chat_id(second) == "mx-1"  # each account numbers its own rooms
    finally:
        await first.close()
        await second.close()
    with pytest.raises(ValueError, match="one bot account"):
        await StateStore.open(postgres_url)


def test_each_account_has_a_schema_of_its_own_within_postgresqls_limits() -> None:
    names = {adapter_schema_name(account) for account in ("@rpbot:localhost", "@rpbot-2:localhost", "@rpbot_2:localhost")}
    assert len(names) == 3
    assert adapter_schema_name("@rpbot:localhost").startswith("adapter_rpbot_localhost_")
    assert len(adapter_schema_name("@" + "x" * 255 + ":example.org")) <= 63


async def test_a_new_postgresql_cache_has_the_tables_and_columns_of_a_sqlite_one(tmp_path: Path, postgres_url: str) -> None:
    sqlite_store = await StateStore.open(tmp_path / "adapter.sqlite3")
    postgres_store = await StateStore.open(postgres_url, account=BOT)
    try:
        tables = [row[0] for row in await sqlite_store.conn.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            if row[0] != "lines_to_hand_over"]  # a SQLite cache's until its first start hands them over
        pg_tables = [row[0] for row in await postgres_store.conn.fetch_all(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
        assert pg_tables == tables
        for table in tables:
            columns = [row["name"] for row in await sqlite_store.conn.fetch_all(f"PRAGMA table_info({table})")]
            pg_columns = [row[0] for row in await postgres_store.conn.fetch_all(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?"
                " ORDER BY ordinal_position", (table,))]
            assert [column for column in pg_columns if column != "seq"] == columns, table
        assert await ADAPTER_SCHEMA.version(postgres_store.conn) == ADAPTER_SCHEMA.latest_version
    finally:
        await sqlite_store.close()
        await postgres_store.close()
