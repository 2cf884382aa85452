"""The event log: schema versions, typed rejection of bad events with nothing written, atomicity."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from core.errors import (
    CharacterNotFoundError,
    ChatNotFoundError,
    ConflictError,
    DigestNotFoundError,
    InvalidPayloadError,
    RpbotError,
    SceneNotFoundError,
    SchemaVersionError,
    TurnNotFoundError,
    UnknownEventKindError,
    WorldEventNotFoundError,
)
from core.eventlog import EVENT_MODELS, append_and_apply, append_event, open_database
from core.eventlog.events import TurnRecorded
from core.eventlog.migrations import MIGRATIONS, latest_version, schema_version
from core.eventlog.projections import PROJECTORS
from core.state import turns, world
from core.storage import Dialect, StorageError
from tests.core.conftest import PLAYER, STORY_START, row_counts, sqlite_only


async def test_new_database_is_at_latest_schema_version_in_wal_mode(db):
    assert await schema_version(db.writer) == latest_version() == len(MIGRATIONS) >= 1
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    if db.dialect is Dialect.SQLITE:
        rows = await db.writer.fetch_all("PRAGMA journal_mode")
        assert rows[0][0] == "wal"


async def test_reopening_keeps_data_and_version(db, chat):
    again = await open_database(db.location)
    try:
        assert await schema_version(again.writer) == latest_version()
        assert (await world.require_chat(again, "chat-1")).host == "ada"
    finally:
        await again.close()


async def test_database_from_a_newer_rpbot_is_refused(tmp_path):
    path = tmp_path / "future.sqlite3"
    with closing(sqlite3.connect(path)) as conn:  # as an older rpbot's file: only PRAGMA user_version
        conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    with pytest.raises(SchemaVersionError):
        await open_database(path)


@sqlite_only
async def test_the_engines_database_memory_is_bounded(db):
    """Page caches plus memory-mapped pages of both connections: at most 48 MB however large the log
    grows, so a bot serving 1,000 rooms for months stays under its 150 MB budget (bench/RESULTS.md)."""
    total_bytes = 0
    for conn in (db.writer, db.reader):
        [[cache]] = await conn.fetch_all("PRAGMA cache_size")
        [[page_size]] = await conn.fetch_all("PRAGMA page_size")
        [[mmap]] = await conn.fetch_all("PRAGMA mmap_size")
        total_bytes += (-cache * 1024 if cache < 0 else cache * page_size) + mmap
    assert total_bytes <= 48 * 1024 * 1024


async def test_reader_connection_cannot_write(db):
    with pytest.raises(StorageError):
        await db.reader.execute("INSERT INTO events (kind, payload, recorded_at) VALUES ('x', '{}', 0)")


def test_every_event_kind_has_exactly_one_projector():
    assert set(EVENT_MODELS) == set(PROJECTORS)


@pytest.mark.parametrize(
    ("kind", "payload", "error"),
    [
        ("no_such_kind", {"chat_id": "chat-1"}, UnknownEventKindError),
        ("turn_recorded", {"chat_id": "chat-1", "role": "wizard", "speaker": PLAYER, "text": "hi"}, InvalidPayloadError),
        ("turn_recorded", {"chat_id": "chat-1", "speaker": PLAYER, "text": "hi"}, InvalidPayloadError),
        ("turn_recorded", {"chat_id": "chat-1", "role": "user", "speaker": PLAYER, "text": "hi", "extra": 1},
         InvalidPayloadError),
        ("memory_recorded", {"chat_id": "chat-1", "text": "x", "witnesses": []}, InvalidPayloadError),
        ("memory_recorded", {"chat_id": "chat-1", "text": "x", "witnesses": [PLAYER], "significance": 4},
         InvalidPayloadError),
        ("edge_set", {"chat_id": "chat-1", "from_id": "ada", "to_id": "bram", "affinity": 101, "trust": 0},
         InvalidPayloadError),
        ("edge_set", {"chat_id": "chat-1", "from_id": "ada", "to_id": "ada", "affinity": 1, "trust": 0},
         InvalidPayloadError),
        ("clock_set", {"chat_id": "chat-1", "clock": "not a time"}, InvalidPayloadError),
        ("turn_recorded", ["not", "a", "mapping"], InvalidPayloadError),
        ("turn_recorded", {"chat_id": "no-such-chat", "role": "user", "speaker": PLAYER, "text": "hi"},
         ChatNotFoundError),
        ("memory_recorded", {"chat_id": "no-such-chat", "text": "x", "witnesses": [PLAYER]}, ChatNotFoundError),
        ("chat_created", {"chat_id": "chat-1", "owner": "@o:hs", "host": "ada", "clock": "1890-01-01T00:00:00"},
         ConflictError),
        ("chat_created", {"chat_id": "chat-2", "owner": "@o:hs", "host": "nobody", "clock": "1890-01-01T00:00:00"},
         CharacterNotFoundError),
        ("memory_recorded", {"chat_id": "chat-1", "text": "x", "witnesses": [PLAYER, "stranger"]},
         CharacterNotFoundError),
        ("memory_recorded", {"chat_id": "chat-1", "text": "x", "witnesses": [PLAYER], "scene_id": 999},
         SceneNotFoundError),
        ("memory_recorded", {"chat_id": "chat-1", "text": "x", "witnesses": [PLAYER], "source_turn_id": 999},
         TurnNotFoundError),
        ("turn_truncated", {"chat_id": "chat-1", "turn_id": 999, "text": "x"}, TurnNotFoundError),
        ("scene_closed", {"chat_id": "chat-1", "scene_id": 999}, SceneNotFoundError),
        ("world_event_transitioned", {"chat_id": "chat-1", "world_event_id": 999, "to": "started"},
         WorldEventNotFoundError),
        ("digest_consumed", {"chat_id": "chat-1", "digest_id": 999}, DigestNotFoundError),
    ],
)
async def test_bad_events_raise_typed_errors_and_write_nothing(db, chat, kind, payload, error):
    before = await row_counts(db)
    with pytest.raises(error) as raised:
        await append_and_apply(db, kind, payload)
    assert isinstance(raised.value, RpbotError)
    assert await row_counts(db) == before


async def test_append_event_alone_rejects_unknown_chat(db, chat):
    before = await row_counts(db)
    with pytest.raises(ChatNotFoundError):
        async with db.transaction() as tx:
            await append_event(tx, "clock_set", {"chat_id": "ghost", "clock": STORY_START})
    assert await row_counts(db) == before


async def test_payload_model_of_the_wrong_kind_is_rejected(db, chat):
    payload = TurnRecorded(chat_id="chat-1", role="user", speaker=PLAYER, text="hi")
    with pytest.raises(InvalidPayloadError):
        await append_and_apply(db, "memory_recorded", payload)
    assert (await append_and_apply(db, "turn_recorded", payload)).ref is not None


async def test_a_failing_event_rolls_back_the_whole_transaction(db, chat):
    before = await row_counts(db)
    with pytest.raises(TurnNotFoundError):
        async with db.transaction() as tx:
            await turns.record_turn(tx, "chat-1", "user", PLAYER, "first", source_id="$1")
            await turns.truncate_turn(tx, "chat-1", 123456, "oops")
    assert await row_counts(db) == before
    assert await turns.get_turn_by_source(db, "chat-1", "$1") is None


async def test_an_exception_in_caller_code_rolls_back_too(db, chat):
    before = await row_counts(db)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await turns.record_turn(tx, "chat-1", "user", PLAYER, "first")
            raise RuntimeError("adapter blew up")
    assert await row_counts(db) == before


async def test_events_store_validated_payloads_and_return_refs(db, chat):
    event = await append_and_apply(db, "turn_recorded", {
        "chat_id": "chat-1", "role": "user", "speaker": " you ", "text": "hello",
    })
    assert event.kind == "turn_recorded" and event.chat_id == "chat-1"
    assert event.ref == event.seq
    turn = await turns.require_turn(db, event.ref)
    assert turn.speaker == PLAYER and turn.story_time == STORY_START
