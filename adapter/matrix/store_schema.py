"""The adapter's cache schema: a numbered list of steps (the engine's mechanism), and where a new
PostgreSQL cache starts.

On SQLite the cache is `data_dir/adapter.sqlite3` and every step runs. On PostgreSQL each bot
account keeps its cache in a schema of its own (`adapter_schema_name`), so several bot processes
can share one database without seeing each other's rooms; a new one starts from the baseline
below, the whole cache as it stands at `POSTGRES_BASELINE_VERSION`, and every later step runs on
both backends. Append a step at the end (written for both dialects); never edit one that shipped.
"""

from __future__ import annotations

import hashlib
import re

from core import Schema
from core.storage import Dialect
from core.storage.sql import table_definition

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


POSTGRES_BASELINE_VERSION = 8

# The cache at version 8, in PostgreSQL's dialect. `seq` columns stand in for SQLite's rowid,
# where a read needs the order rows were first written in (a user's rooms, a message's replies).
ADAPTER_SCHEMA.baseline(Dialect.POSTGRESQL, POSTGRES_BASELINE_VERSION, [
    table_definition(Dialect.POSTGRESQL, """CREATE TABLE user_meta (
        user_id TEXT PRIMARY KEY,
        space_id TEXT,
        lobby_room_id TEXT
    )"""),
    table_definition(Dialect.POSTGRESQL, """CREATE TABLE room_meta (
        room_id TEXT PRIMARY KEY,
        room_type TEXT NOT NULL CHECK (room_type IN ('space', 'lobby', 'chat', 'invite')),
        matrix_user_id TEXT NOT NULL,
        space_id TEXT,
        chat_id TEXT,
        platform_chat_id TEXT UNIQUE,
        rounds INTEGER NOT NULL DEFAULT 0,
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY
    )"""),
    "CREATE INDEX room_meta_by_user ON room_meta (matrix_user_id)",
    table_definition(Dialect.POSTGRESQL, "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)"),
    table_definition(Dialect.POSTGRESQL, "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
    table_definition(Dialect.POSTGRESQL, """CREATE TABLE undecrypted (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        event_json TEXT NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL
    )"""),
    table_definition(Dialect.POSTGRESQL, """CREATE TABLE reply_messages (
        source_event_id TEXT NOT NULL,
        character_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        turn_id BIGINT,
        seq BIGINT GENERATED BY DEFAULT AS IDENTITY,
        PRIMARY KEY (source_event_id, character_id)
    )"""),
    "CREATE INDEX reply_messages_by_turn ON reply_messages (turn_id)",
    "CREATE INDEX reply_messages_by_event ON reply_messages (event_id)",
    table_definition(Dialect.POSTGRESQL, """CREATE TABLE room_players (
        room_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (room_id, user_id)
    )"""),
    table_definition(Dialect.POSTGRESQL, """CREATE TABLE memory_lists (
        room_id TEXT NOT NULL,
        player TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        holder TEXT NOT NULL,
        holder_name TEXT NOT NULL,
        memory_ids TEXT NOT NULL,
        PRIMARY KEY (room_id, player)
    )"""),
])


def insertion_order(dialect: Dialect) -> str:
    """The column that orders a table's rows as they were first written (SQLite's rowid)."""
    return "rowid" if dialect is Dialect.SQLITE else "seq"


def adapter_schema_name(account: str) -> str:
    """The PostgreSQL schema of one bot account's cache (`@rpbot:example.org` ->
    `adapter_rpbot_example_org_1a2b3c4d`): readable, within PostgreSQL's 63 bytes, and distinct
    for two accounts whose names read alike once punctuation is dropped."""
    readable = re.sub(r"[^a-z0-9]+", "_", account.lower()).strip("_")[:40]
    return f"adapter_{readable}_{hashlib.sha256(account.encode()).hexdigest()[:8]}"
