"""The adapter's cache: which rooms and Spaces belong to whom.

It lives in `data_dir/adapter.sqlite3`, or with `[storage] database_url` in the PostgreSQL
database, in a schema of its own per bot account (`adapter.matrix.store_schema`). Its rooms and
users can be rebuilt from Matrix room state (`org.rpbot.*` events the bot wrote); the engine's
database holds the stories and knows which lines are owed.
Tables: user_meta (a user's Space and lobby), room_meta (what each room is for, which chat
it shows, and whether its players take turns in rounds), room_players (who plays in each story
room besides its owner, as the room's membership says), counters, kv (the sync token, uploaded
media), reply_messages (which Matrix message shows which reply), undecrypted (events waiting for
their key) and memory_lists (the last `!memory` list each player was shown in each room). Plain SQL
in small named functions taking the store first, through the storage seam (`core.storage`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

from adapter.errors import AdapterError
from adapter.matrix.room_types import RoomType
from adapter.matrix.store_schema import ADAPTER_SCHEMA, adapter_schema_name, insertion_order
from core.storage import Connection, Dialect, Row, is_postgres_url, open_connection, open_sqlite, snapshot_sqlite
from core.storage.sql import greatest


class CacheNotReadyError(AdapterError, LookupError):
    """A cache opened only to read is not at this rpbot's version (the bot has not started on it yet)."""

    player_summary = "The bot's cache is not ready"


@dataclass(frozen=True)
class UserMeta:
    user_id: str
    space_id: str | None = None
    lobby_room_id: str | None = None


@dataclass(frozen=True)
class RoomMeta:
    room_id: str
    room_type: RoomType
    matrix_user_id: str
    space_id: str | None = None
    chat_id: str | None = None
    platform_chat_id: str | None = None
    rounds: bool = False  # a story room whose players' lines are answered in rounds (`!rounds on`)


def _room_meta(row: Row) -> RoomMeta:
    return RoomMeta(**{**dict(row), "room_type": RoomType(row["room_type"]), "rounds": bool(row["rounds"])})


class StateStore:
    """One connection to the cache, with a lock so writes never interleave."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.write_lock = asyncio.Lock()

    @property
    def dialect(self) -> Dialect:
        return self.conn.dialect

    @classmethod
    async def open(cls, location: Path | str, *, account: str | None = None, read_only: bool = False) -> StateStore:
        """The cache in the SQLite file `location`, or, for a `postgresql://` URL, the schema of the
        bot `account` in that database; brought to the latest version unless `read_only` (which
        then refuses a cache that is not at the latest version)."""
        schema = None
        if is_postgres_url(location):
            if account is None:
                raise ValueError("a cache in PostgreSQL belongs to one bot account: name it")
            schema = adapter_schema_name(account)
        if read_only and schema is None:  # read as it is, creating or changing nothing beside the file
            conn: Connection = await open_sqlite(location, untouched=True)
        else:
            conn = await open_connection(
                location, lock_name=schema or "adapter", schema=schema, read_only=read_only,
                sqlite_pragmas=["journal_mode=WAL", "synchronous=FULL"],
            )
        try:
            if read_only:
                version = await ADAPTER_SCHEMA.version(conn)
                if version != ADAPTER_SCHEMA.latest_version:
                    raise CacheNotReadyError(
                        f"the cache is at version {version}, not {ADAPTER_SCHEMA.latest_version}: start the bot once first"
                    )
            else:
                await ADAPTER_SCHEMA.upgrade(conn)
        except BaseException:
            await conn.close()  # an SQLite connection's thread would otherwise keep the process alive
            raise
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()


async def get_user_meta(store: StateStore, user_id: str) -> UserMeta | None:
    row = await store.conn.fetch_one("SELECT user_id, space_id, lobby_room_id FROM user_meta WHERE user_id = ?", (user_id,))
    return UserMeta(**dict(row)) if row else None


async def set_user_meta(store: StateStore, meta: UserMeta) -> None:
    async with store.write_lock:
        await store.conn.execute(
            "INSERT INTO user_meta (user_id, space_id, lobby_room_id) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET space_id = excluded.space_id, lobby_room_id = excluded.lobby_room_id",
            (meta.user_id, meta.space_id, meta.lobby_room_id),
        )


_ROOM_META_COLUMNS = "room_id, room_type, matrix_user_id, space_id, chat_id, platform_chat_id, rounds"


async def get_room_meta(store: StateStore, room_id: str) -> RoomMeta | None:
    row = await store.conn.fetch_one(f"SELECT {_ROOM_META_COLUMNS} FROM room_meta WHERE room_id = ?", (room_id,))
    return _room_meta(row) if row else None


async def set_room_meta(store: StateStore, meta: RoomMeta) -> None:
    async with store.write_lock:
        await store.conn.execute(
            f"INSERT INTO room_meta ({_ROOM_META_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET room_type = excluded.room_type,"
            " matrix_user_id = excluded.matrix_user_id, space_id = excluded.space_id,"
            " chat_id = excluded.chat_id, platform_chat_id = excluded.platform_chat_id, rounds = excluded.rounds",
            (meta.room_id, str(meta.room_type), meta.matrix_user_id, meta.space_id, meta.chat_id, meta.platform_chat_id,
             int(meta.rounds)),
        )


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of adapter.sqlite3 (WAL included) through SQLite's backup API, read-only at the source."""
    if source.exists():
        snapshot_sqlite(source, target)


async def chat_id_of_platform_chat(location: Path | str, account: str, platform_chat_id: str) -> str | None:
    """The engine chat id of a platform chat id (`mx-N`) in the cache of the bot `account`, read
    without changing anything, for operator commands that must not open the store for writing."""
    if isinstance(location, Path) and not await asyncio.to_thread(location.exists):
        return None
    try:
        store = await StateStore.open(location, account=account, read_only=True)
    except CacheNotReadyError:
        return None  # a cache this bot has not written yet
    try:
        row = await store.conn.fetch_one("SELECT chat_id FROM room_meta WHERE platform_chat_id = ?", (platform_chat_id,))
    finally:
        await store.close()
    return row[0] if row and row[0] else None


async def all_room_meta(store: StateStore) -> dict[str, RoomMeta]:
    rows = await store.conn.fetch_all(f"SELECT {_ROOM_META_COLUMNS} FROM room_meta")
    return {row["room_id"]: _room_meta(row) for row in rows}


async def all_user_meta(store: StateStore) -> dict[str, UserMeta]:
    rows = await store.conn.fetch_all("SELECT user_id, space_id, lobby_room_id FROM user_meta")
    return {row["user_id"]: UserMeta(**dict(row)) for row in rows}


async def rooms_of_user(store: StateStore, user_id: str) -> list[RoomMeta]:
    rows = await store.conn.fetch_all(
        f"SELECT {_ROOM_META_COLUMNS} FROM room_meta WHERE matrix_user_id = ? ORDER BY {insertion_order(store.dialect)}",
        (user_id,),
    )
    return [_room_meta(row) for row in rows]


async def next_platform_chat_id(store: StateStore) -> str:
    """A platform chat id never handed out before by this store (`mx-<n>`)."""
    async with store.write_lock:
        row = await store.conn.fetch_one(
            "INSERT INTO counters (name, value) VALUES ('platform_chat_id', 1)"
            " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value"
        )
    assert row is not None  # RETURNING gives the row just written
    return f"mx-{row[0]}"


async def raise_counter_to(store: StateStore, name: str, at_least: int) -> None:
    """Make sure the counter is at least `at_least` (after a rebuild, ids already in use stay unused)."""
    async with store.write_lock:
        await store.conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            f" ON CONFLICT (name) DO UPDATE SET value = {greatest(store.dialect, 'counters.value', 'excluded.value')}",
            (name, at_least),
        )


async def room_players(store: StateStore, room_id: str) -> frozenset[str]:
    """Who plays in the story room `room_id` besides its owner."""
    rows = await store.conn.fetch_all("SELECT user_id FROM room_players WHERE room_id = ?", (room_id,))
    return frozenset(row[0] for row in rows)


async def all_room_players(store: StateStore) -> dict[str, frozenset[str]]:
    """room id -> who plays there besides its owner, for every story room with other players."""
    rows = await store.conn.fetch_all("SELECT room_id, user_id FROM room_players")
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row[0], set()).add(row[1])
    return {room_id: frozenset(users) for room_id, users in found.items()}


async def add_room_player(store: StateStore, room_id: str, user_id: str) -> bool:
    """`user_id` plays in `room_id` now; False if they already did."""
    async with store.write_lock:
        return await store.conn.execute(
            "INSERT INTO room_players (room_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (room_id, user_id)
        ) == 1


async def remove_room_player(store: StateStore, room_id: str, user_id: str) -> bool:
    """`user_id` no longer plays in `room_id`; False if they did not."""
    async with store.write_lock:
        return await store.conn.execute("DELETE FROM room_players WHERE room_id = ? AND user_id = ?", (room_id, user_id)) == 1


async def set_room_players(store: StateStore, room_id: str, user_ids: frozenset[str]) -> None:
    """Exactly `user_ids` play in `room_id` besides its owner (a rebuild from the room's membership)."""
    async with store.write_lock, store.conn.transaction():
        await store.conn.execute("DELETE FROM room_players WHERE room_id = ?", (room_id,))
        await store.conn.execute_many(
            "INSERT INTO room_players (room_id, user_id) VALUES (?, ?)", [(room_id, user) for user in sorted(user_ids)]
        )


async def _kv(store: StateStore, key: str) -> str | None:
    row = await store.conn.fetch_one("SELECT value FROM kv WHERE key = ?", (key,))
    return row[0] if row else None


async def _set_kv(store: StateStore, key: str, value: str) -> None:
    async with store.write_lock:
        await store.conn.execute(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value)
        )


async def get_sync_token(store: StateStore) -> str | None:
    return await _kv(store, "sync_token")


async def set_sync_token(store: StateStore, token: str) -> None:
    await _set_kv(store, "sync_token", token)


async def get_uploaded_media(store: StateStore, digest: str) -> str | None:
    """The mxc URI an image with this SHA-256 was uploaded as, if it was."""
    return await _kv(store, f"media:{digest}")


async def set_uploaded_media(store: StateStore, digest: str, uri: str) -> None:
    await _set_kv(store, f"media:{digest}", uri)


async def record_reply_message(
    store: StateStore, source_event_id: str, character_id: str, event_id: str, turn_id: int | None = None
) -> None:
    """Remember that `event_id` shows `character_id`'s reply to `source_event_id` (a line, or the
    `!regen` that redid one); with `turn_id`, the engine turn it now shows."""
    async with store.write_lock:
        await store.conn.execute(
            "INSERT INTO reply_messages (source_event_id, character_id, event_id, turn_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (source_event_id, character_id) DO UPDATE SET"
            " event_id = excluded.event_id, turn_id = coalesce(excluded.turn_id, reply_messages.turn_id)",
            (source_event_id, character_id, event_id, turn_id),
        )


async def reply_message_for(store: StateStore, source_event_id: str, character_id: str) -> str | None:
    """The message already showing `character_id`'s reply to `source_event_id`, if one was started."""
    row = await store.conn.fetch_one(
        "SELECT event_id FROM reply_messages WHERE source_event_id = ? AND character_id = ?", (source_event_id, character_id)
    )
    return row[0] if row else None


async def character_of_message(store: StateStore, event_id: str) -> str | None:
    """The character whose reply the message `event_id` shows (None: not a character's reply)."""
    row = await store.conn.fetch_one(
        f"SELECT character_id FROM reply_messages WHERE event_id = ? ORDER BY {insertion_order(store.dialect)} DESC LIMIT 1",
        (event_id,),
    )
    return row[0] if row else None


async def message_showing_turn(store: StateStore, turn_id: int) -> str | None:
    """The message that shows the engine turn `turn_id` (None: not shown by this bot, or the cache was lost)."""
    row = await store.conn.fetch_one(
        f"SELECT event_id FROM reply_messages WHERE turn_id = ? ORDER BY {insertion_order(store.dialect)} DESC LIMIT 1",
        (turn_id,),
    )
    return row[0] if row else None


async def turn_of_message(store: StateStore, event_id: str) -> int | None:
    """The engine turn the message `event_id` shows now: the newest turn recorded for it (None: unknown,
    or not recorded yet)."""
    row = await store.conn.fetch_one("SELECT max(turn_id) FROM reply_messages WHERE event_id = ?", (event_id,))
    return row[0] if row else None


async def story_room_of_chat(store: StateStore, chat_id: str) -> RoomMeta | None:
    row = await store.conn.fetch_one(
        f"SELECT {_ROOM_META_COLUMNS} FROM room_meta WHERE chat_id = ? AND room_type = ? LIMIT 1", (chat_id, str(RoomType.STORY))
    )
    return _room_meta(row) if row else None


async def lines_an_older_rpbot_owed(store: StateStore) -> list[tuple[str, str, str]]:
    """(source_event_id, chat_id, text) of lines a cache from before the engine owned answered lines
    still owed, oldest first: kept in `lines_to_hand_over` only until the next start hands them to
    the engine and drops that table (`drop_lines_an_older_rpbot_owed`). Only an old SQLite cache
    has them: a PostgreSQL cache began after."""
    if store.dialect is not Dialect.SQLITE:
        return []
    tables = await store.conn.fetch_all("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'lines_to_hand_over'")
    if not tables:
        return []
    rows = await store.conn.fetch_all("SELECT source_event_id, chat_id, text FROM lines_to_hand_over ORDER BY rowid")
    return [(row[0], row[1], row[2]) for row in rows]


async def drop_lines_an_older_rpbot_owed(store: StateStore) -> None:
    async with store.write_lock:
        await store.conn.execute("DROP TABLE IF EXISTS lines_to_hand_over")


async def keep_undecrypted(store: StateStore, room_id: str, event_id: str, event_json: str, now: float) -> bool:
    """Remember an event whose key has not arrived; False if it was already kept."""
    async with store.write_lock:
        return await store.conn.execute(
            "INSERT INTO undecrypted (event_id, room_id, event_json, first_seen) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (event_id, room_id, event_json, now),
        ) == 1


async def undecrypted_events(store: StateStore) -> list[tuple[str, str, str]]:
    """(room_id, event_id, event_json) of every event still waiting for its key, oldest first."""
    rows = await store.conn.fetch_all("SELECT room_id, event_id, event_json FROM undecrypted ORDER BY first_seen")
    return [(row[0], row[1], row[2]) for row in rows]


async def forget_undecrypted(store: StateStore, event_id: str) -> None:
    async with store.write_lock:
        await store.conn.execute("DELETE FROM undecrypted WHERE event_id = ?", (event_id,))


@dataclass(frozen=True)
class MemoryList:
    """The memories a `!memory` list showed `player` in a room, numbered from 1 in this order."""

    room_id: str
    player: str
    chat_id: str
    holder: str
    holder_name: str
    memory_ids: tuple[int, ...]


async def set_memory_list(store: StateStore, shown: MemoryList) -> None:
    async with store.write_lock:
        await store.conn.execute(
            """INSERT INTO memory_lists (room_id, player, chat_id, holder, holder_name, memory_ids) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (room_id, player) DO UPDATE SET chat_id = excluded.chat_id, holder = excluded.holder,
                   holder_name = excluded.holder_name, memory_ids = excluded.memory_ids""",
            (shown.room_id, shown.player, shown.chat_id, shown.holder, shown.holder_name, json.dumps(list(shown.memory_ids))),
        )


async def memory_list(store: StateStore, room_id: str, player: str) -> MemoryList | None:
    """The last `!memory` list `player` was shown in `room_id`."""
    row = await store.conn.fetch_one(
        "SELECT room_id, player, chat_id, holder, holder_name, memory_ids FROM memory_lists WHERE room_id = ? AND player = ?",
        (room_id, player),
    )
    if row is None:
        return None
    return MemoryList(row["room_id"], row["player"], row["chat_id"], row["holder"], row["holder_name"],
                      tuple(json.loads(row["memory_ids"])))
