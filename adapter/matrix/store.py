"""The adapter's cache (`adapter.sqlite3`): which rooms and Spaces belong to whom.

Its rooms and users can be rebuilt from Matrix room state (`org.rpbot.*` events
the bot wrote); `engine.sqlite3` holds the stories and knows which lines are owed.
Tables: user_meta (a user's Space and lobby), room_meta (what each room is for, which chat
it shows, and whether its players take turns in rounds), room_players (who plays in each story
room besides its owner, as the room's membership says), counters, kv (the sync token, uploaded media), reply_messages
(which Matrix message shows which reply), undecrypted (events waiting for their
key) and memory_lists (the last `!memory` list each player was shown in each room). Plain SQL in small named functions taking the store first.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from adapter.matrix.room_types import RoomType
from core import Schema, SqliteConnection

# The cache's schema, with the engine's migration mechanism: append steps, never edit one that shipped.
ADAPTER_SCHEMA = Schema("adapter", "adapter.sqlite3")
ADAPTER_SCHEMA.statements("rooms and users, counters, the sync token, deliveries", [
    """CREATE TABLE user_meta (
        user_id TEXT PRIMARY KEY,
        space_id TEXT,
        lobby_room_id TEXT
    )""",
    """CREATE TABLE room_meta (
        room_id TEXT PRIMARY KEY,
        room_type TEXT NOT NULL CHECK (room_type IN ('space', 'lobby', 'chat', 'invite')),
        matrix_user_id TEXT NOT NULL,
        space_id TEXT,
        chat_id TEXT,
        platform_chat_id TEXT UNIQUE
    )""",
    "CREATE INDEX room_meta_by_user ON room_meta (matrix_user_id)",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE deliveries (
        source_event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        turn_id TEXT,
        text TEXT NOT NULL,
        reply_event_id TEXT,
        status TEXT NOT NULL CHECK (status IN ('pending', 'generated', 'delivered', 'failed'))
    )""",
])
# The message each speaker's reply to a source event lives in, so a redelivered turn edits it
# instead of posting a second message after the homeserver forgot the transaction id.
ADAPTER_SCHEMA.statements("the message each reply lives in", [
    """CREATE TABLE reply_messages (
        source_event_id TEXT NOT NULL,
        speaker TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (source_event_id, speaker)
    )""",
])
ADAPTER_SCHEMA.statements("messages that could not be decrypted yet, kept until their key arrives", [
    """CREATE TABLE undecrypted (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        event_json TEXT NOT NULL,
        first_seen REAL NOT NULL
    )""",
])
# The engine now knows which lines are owed and which reply is the latest: the cache keeps only
# which message shows which reply (by character id, with the engine turn once it is recorded).
# Lines an older rpbot still owed are handed to the engine at the next start.
ADAPTER_SCHEMA.statements("the engine owns answered lines; the cache maps messages to turns", [
    """CREATE TABLE lines_to_hand_over AS
       SELECT source_event_id, chat_id, text FROM deliveries WHERE status IN ('pending', 'generated') ORDER BY rowid""",
    """CREATE TABLE messages_of_replies (
        source_event_id TEXT NOT NULL,  -- the line answered, or the `!regen` / reaction that redid it
        character_id TEXT NOT NULL,
        event_id TEXT NOT NULL,  -- the Matrix message showing the reply
        turn_id INTEGER,  -- the engine turn it shows, once recorded
        PRIMARY KEY (source_event_id, character_id)
    )""",
    """INSERT INTO messages_of_replies (source_event_id, character_id, event_id, turn_id)
       SELECT source_event_id, '', reply_event_id, CAST(turn_id AS INTEGER) FROM deliveries
       WHERE status = 'delivered' AND reply_event_id IS NOT NULL AND turn_id IS NOT NULL""",
    "DROP TABLE deliveries",
    "DROP TABLE reply_messages",
    "ALTER TABLE messages_of_replies RENAME TO reply_messages",
    "CREATE INDEX reply_messages_by_turn ON reply_messages (turn_id)",
])

ADAPTER_SCHEMA.statements("find a reply's message by its event id (whom a player's Matrix reply answers)", [
    "CREATE INDEX reply_messages_by_event ON reply_messages (event_id)",
])

# The last `!memory` list shown in each story room, by memory id, so `!forget <n>` means the n-th
# memory of that list whatever was remembered since, and after a restart.
ADAPTER_SCHEMA.statements("the last memory list shown in each room (what `!forget <n>` numbers from)", [
    """CREATE TABLE memory_lists (
        room_id TEXT PRIMARY KEY,
        chat_id TEXT NOT NULL,
        holder TEXT NOT NULL,  -- whose memories: a character id, or "you"
        holder_name TEXT NOT NULL,
        memory_ids TEXT NOT NULL  -- JSON list, in the order shown (number 1 first)
    )""",
])

# Several players in a story: who plays in each story room besides its owner (its allowed joined
# members, rebuilt from membership at start), and whether the room answers its players in rounds
# (kept in the room's `org.rpbot.room` state, like the rest of its identity).
ADAPTER_SCHEMA.statements("the players of each story room, and rounds", [
    """CREATE TABLE room_players (
        room_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (room_id, user_id)
    )""",
    "ALTER TABLE room_meta ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0",
])
# Each player's last `!memory` list: `!forget <n>` numbers from the asker's own list (a list shown
# before is the owner's).
ADAPTER_SCHEMA.statements("the last memory list each player was shown in each room", [
    """CREATE TABLE memory_lists_of_players (
        room_id TEXT NOT NULL,
        player TEXT NOT NULL,  -- who asked for the list
        chat_id TEXT NOT NULL,
        holder TEXT NOT NULL,  -- whose memories: a character id, or "you" (the player who asked)
        holder_name TEXT NOT NULL,
        memory_ids TEXT NOT NULL,  -- JSON list, in the order shown (number 1 first)
        PRIMARY KEY (room_id, player)
    )""",
    """INSERT INTO memory_lists_of_players (room_id, player, chat_id, holder, holder_name, memory_ids)
       SELECT m.room_id, r.matrix_user_id, m.chat_id, m.holder, m.holder_name, m.memory_ids
       FROM memory_lists m JOIN room_meta r ON r.room_id = m.room_id""",
    "DROP TABLE memory_lists",
    "ALTER TABLE memory_lists_of_players RENAME TO memory_lists",
])


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


def _room_meta(row: aiosqlite.Row) -> RoomMeta:
    return RoomMeta(**{**dict(row), "room_type": RoomType(row["room_type"]), "rounds": bool(row["rounds"])})


class StateStore:
    """One aiosqlite connection to adapter.sqlite3, with a lock so writes never interleave."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path | str) -> StateStore:
        conn = await aiosqlite.connect(str(path), isolation_level=None)  # autocommit: each write commits
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute_fetchall("PRAGMA journal_mode=WAL")
            await conn.execute_fetchall("PRAGMA synchronous=FULL")
            await ADAPTER_SCHEMA.upgrade(SqliteConnection(conn, Path(path)))
        except BaseException:
            await conn.close()  # its thread would otherwise keep the process alive
            raise
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()


async def get_user_meta(store: StateStore, user_id: str) -> UserMeta | None:
    async with store.conn.execute("SELECT * FROM user_meta WHERE user_id = ?", (user_id,)) as cursor:
        row = await cursor.fetchone()
    return UserMeta(**dict(row)) if row else None


async def set_user_meta(store: StateStore, meta: UserMeta) -> None:
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO user_meta (user_id, space_id, lobby_room_id) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET space_id = excluded.space_id, lobby_room_id = excluded.lobby_room_id",
            (meta.user_id, meta.space_id, meta.lobby_room_id),
        )


async def get_room_meta(store: StateStore, room_id: str) -> RoomMeta | None:
    async with store.conn.execute("SELECT * FROM room_meta WHERE room_id = ?", (room_id,)) as cursor:
        row = await cursor.fetchone()
    return _room_meta(row) if row else None


async def set_room_meta(store: StateStore, meta: RoomMeta) -> None:
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO room_meta (room_id, room_type, matrix_user_id, space_id, chat_id, platform_chat_id, rounds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id) DO UPDATE SET room_type = excluded.room_type,"
            " matrix_user_id = excluded.matrix_user_id, space_id = excluded.space_id,"
            " chat_id = excluded.chat_id, platform_chat_id = excluded.platform_chat_id, rounds = excluded.rounds",
            (meta.room_id, meta.room_type, meta.matrix_user_id, meta.space_id, meta.chat_id, meta.platform_chat_id, int(meta.rounds)),
        )


def read_only_uri(path: Path) -> str:
    """An SQLite URI that reads `path` without creating or changing any file next to it.

    With no WAL file present (the bot is stopped, or checkpointed), `immutable=1` keeps
    SQLite from creating empty -wal/-shm files; with one present, plain read-only mode
    reads the WAL too (the bot may be running)."""
    wal = path.with_name(path.name + "-wal")
    return f"file:{path}?mode=ro" if wal.exists() else f"file:{path}?immutable=1"


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of adapter.sqlite3 (WAL included) through SQLite's backup API, read-only at the source."""
    if not source.exists():
        return
    with closing(sqlite3.connect(read_only_uri(source), uri=True)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def chat_id_of_platform_chat(path: Path, platform_chat_id: str) -> str | None:
    """The engine chat id of a platform chat id (`mx-N`), read from the cache at `path` without
    changing it, for operator commands that must not open the store for writing."""
    if not path.exists():
        return None
    with closing(sqlite3.connect(read_only_uri(path), uri=True)) as conn:
        row = conn.execute("SELECT chat_id FROM room_meta WHERE platform_chat_id = ?", (platform_chat_id,)).fetchone()
    return row[0] if row and row[0] else None


async def all_room_meta(store: StateStore) -> dict[str, RoomMeta]:
    async with store.conn.execute("SELECT * FROM room_meta") as cursor:
        return {row["room_id"]: _room_meta(row) for row in await cursor.fetchall()}


async def all_user_meta(store: StateStore) -> dict[str, UserMeta]:
    async with store.conn.execute("SELECT * FROM user_meta") as cursor:
        return {row["user_id"]: UserMeta(**dict(row)) for row in await cursor.fetchall()}


async def rooms_of_user(store: StateStore, user_id: str) -> list[RoomMeta]:
    async with store.conn.execute(
        "SELECT * FROM room_meta WHERE matrix_user_id = ? ORDER BY rowid", (user_id,)
    ) as cursor:
        return [_room_meta(row) for row in await cursor.fetchall()]


async def next_platform_chat_id(store: StateStore) -> str:
    """A platform chat id never handed out before by this store (`mx-<n>`)."""
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO counters (name, value) VALUES ('platform_chat_id', 1)"
            " ON CONFLICT (name) DO UPDATE SET value = value + 1"
        )
        async with store.conn.execute("SELECT value FROM counters WHERE name = 'platform_chat_id'") as cursor:
            row = await cursor.fetchone()
        assert row is not None  # the statement above has just written it
        value = row[0]
    return f"mx-{value}"


async def raise_counter_to(store: StateStore, name: str, at_least: int) -> None:
    """Make sure the counter is at least `at_least` (after a rebuild, ids already in use stay unused)."""
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
            (name, at_least),
        )


async def room_players(store: StateStore, room_id: str) -> frozenset[str]:
    """Who plays in the story room `room_id` besides its owner."""
    rows = await store.conn.execute_fetchall("SELECT user_id FROM room_players WHERE room_id = ?", (room_id,))
    return frozenset(row[0] for row in rows)


async def all_room_players(store: StateStore) -> dict[str, frozenset[str]]:
    """room id -> who plays there besides its owner, for every story room with other players."""
    rows = await store.conn.execute_fetchall("SELECT room_id, user_id FROM room_players")
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row[0], set()).add(row[1])
    return {room_id: frozenset(users) for room_id, users in found.items()}


async def add_room_player(store: StateStore, room_id: str, user_id: str) -> bool:
    """`user_id` plays in `room_id` now; False if they already did."""
    async with store.write_lock:
        async with store.conn.execute(
            "INSERT INTO room_players (room_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING", (room_id, user_id)
        ) as cursor:
            return cursor.rowcount == 1


async def remove_room_player(store: StateStore, room_id: str, user_id: str) -> bool:
    """`user_id` no longer plays in `room_id`; False if they did not."""
    async with store.write_lock:
        async with store.conn.execute("DELETE FROM room_players WHERE room_id = ? AND user_id = ?", (room_id, user_id)) as cursor:
            return cursor.rowcount == 1


async def set_room_players(store: StateStore, room_id: str, user_ids: frozenset[str]) -> None:
    """Exactly `user_ids` play in `room_id` besides its owner (a rebuild from the room's membership)."""
    async with store.write_lock:
        await store.conn.execute_fetchall("DELETE FROM room_players WHERE room_id = ?", (room_id,))
        async with store.conn.executemany(
            "INSERT INTO room_players (room_id, user_id) VALUES (?, ?)", [(room_id, user) for user in sorted(user_ids)]
        ):
            pass


async def get_sync_token(store: StateStore) -> str | None:
    async with store.conn.execute("SELECT value FROM kv WHERE key = 'sync_token'") as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def set_sync_token(store: StateStore, token: str) -> None:
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO kv (key, value) VALUES ('sync_token', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (token,),
        )


async def get_uploaded_media(store: StateStore, digest: str) -> str | None:
    """The mxc URI an image with this SHA-256 was uploaded as, if it was."""
    async with store.conn.execute("SELECT value FROM kv WHERE key = ?", (f"media:{digest}",)) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def set_uploaded_media(store: StateStore, digest: str, uri: str) -> None:
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", (f"media:{digest}", uri)
        )


async def record_reply_message(
    store: StateStore, source_event_id: str, character_id: str, event_id: str, turn_id: int | None = None
) -> None:
    """Remember that `event_id` shows `character_id`'s reply to `source_event_id` (a line, or the
    `!regen` that redid one); with `turn_id`, the engine turn it now shows."""
    async with store.write_lock:
        await store.conn.execute_fetchall(
            "INSERT INTO reply_messages (source_event_id, character_id, event_id, turn_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (source_event_id, character_id) DO UPDATE SET"
            " event_id = excluded.event_id, turn_id = coalesce(excluded.turn_id, turn_id)",
            (source_event_id, character_id, event_id, turn_id),
        )


async def reply_message_for(store: StateStore, source_event_id: str, character_id: str) -> str | None:
    """The message already showing `character_id`'s reply to `source_event_id`, if one was started."""
    async with store.conn.execute(
        "SELECT event_id FROM reply_messages WHERE source_event_id = ? AND character_id = ?",
        (source_event_id, character_id),
    ) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def character_of_message(store: StateStore, event_id: str) -> str | None:
    """The character whose reply the message `event_id` shows (None: not a character's reply)."""
    async with store.conn.execute(
        "SELECT character_id FROM reply_messages WHERE event_id = ? ORDER BY rowid DESC LIMIT 1", (event_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def message_showing_turn(store: StateStore, turn_id: int) -> str | None:
    """The message that shows the engine turn `turn_id` (None: not shown by this bot, or the cache was lost)."""
    async with store.conn.execute(
        "SELECT event_id FROM reply_messages WHERE turn_id = ? ORDER BY rowid DESC LIMIT 1", (turn_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def turn_of_message(store: StateStore, event_id: str) -> int | None:
    """The engine turn the message `event_id` shows now: the newest turn recorded for it (None: unknown,
    or not recorded yet)."""
    async with store.conn.execute("SELECT max(turn_id) FROM reply_messages WHERE event_id = ?", (event_id,)) as cursor:
        row = await cursor.fetchone()
    return row[0] if row else None


async def story_room_of_chat(store: StateStore, chat_id: str) -> RoomMeta | None:
    async with store.conn.execute(
        "SELECT * FROM room_meta WHERE chat_id = ? AND room_type = ? LIMIT 1", (chat_id, RoomType.STORY)
    ) as cursor:
        row = await cursor.fetchone()
    return _room_meta(row) if row else None


async def lines_an_older_rpbot_owed(store: StateStore) -> list[tuple[str, str, str]]:
    """(source_event_id, chat_id, text) of lines a cache from before the engine owned answered lines
    still owed, oldest first: kept in `lines_to_hand_over` only until the next start hands them to
    the engine and drops that table (`drop_lines_an_older_rpbot_owed`)."""
    tables = await store.conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'lines_to_hand_over'")
    if not tables:
        return []
    rows = await store.conn.execute_fetchall("SELECT source_event_id, chat_id, text FROM lines_to_hand_over ORDER BY rowid")
    return [(row[0], row[1], row[2]) for row in rows]


async def drop_lines_an_older_rpbot_owed(store: StateStore) -> None:
    async with store.write_lock:
        await store.conn.execute_fetchall("DROP TABLE IF EXISTS lines_to_hand_over")


async def keep_undecrypted(store: StateStore, room_id: str, event_id: str, event_json: str, now: float) -> bool:
    """Remember an event whose key has not arrived; False if it was already kept."""
    async with store.write_lock:
        async with store.conn.execute(
            "INSERT INTO undecrypted (event_id, room_id, event_json, first_seen) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (event_id, room_id, event_json, now),
        ) as cursor:
            inserted = cursor.rowcount == 1
    return inserted


async def undecrypted_events(store: StateStore) -> list[tuple[str, str, str]]:
    """(room_id, event_id, event_json) of every event still waiting for its key, oldest first."""
    rows = await store.conn.execute_fetchall("SELECT room_id, event_id, event_json FROM undecrypted ORDER BY first_seen")
    return [(row[0], row[1], row[2]) for row in rows]


async def forget_undecrypted(store: StateStore, event_id: str) -> None:
    async with store.write_lock:
        await store.conn.execute_fetchall("DELETE FROM undecrypted WHERE event_id = ?", (event_id,))


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
        await store.conn.execute_fetchall(
            """INSERT INTO memory_lists (room_id, player, chat_id, holder, holder_name, memory_ids) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (room_id, player) DO UPDATE SET chat_id = excluded.chat_id, holder = excluded.holder,
                   holder_name = excluded.holder_name, memory_ids = excluded.memory_ids""",
            (shown.room_id, shown.player, shown.chat_id, shown.holder, shown.holder_name, json.dumps(list(shown.memory_ids))),
        )


async def memory_list(store: StateStore, room_id: str, player: str) -> MemoryList | None:
    """The last `!memory` list `player` was shown in `room_id`."""
    rows = await store.conn.execute_fetchall("SELECT * FROM memory_lists WHERE room_id = ? AND player = ?", (room_id, player))
    row = next(iter(rows), None)
    if row is None:
        return None
    return MemoryList(row["room_id"], row["player"], row["chat_id"], row["holder"], row["holder_name"],
                      tuple(json.loads(row["memory_ids"])))
