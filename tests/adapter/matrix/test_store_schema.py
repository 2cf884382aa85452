"""The adapter's cache uses the engine's migration mechanism: numbered steps, a newer file refused."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from adapter.matrix.store import ADAPTER_SCHEMA, RoomMeta, StateStore, get_room_meta, set_room_meta
from core.errors import SchemaVersionError
from core.eventlog.migrations import ENGINE_SCHEMA
from core.eventlog.schema import Schema, schema_version


def test_both_databases_are_versioned_by_the_same_mechanism() -> None:
    assert isinstance(ADAPTER_SCHEMA, Schema) and isinstance(ENGINE_SCHEMA, Schema)
    assert [m.version for m in ADAPTER_SCHEMA.migrations] == list(range(1, ADAPTER_SCHEMA.latest_version + 1))


async def test_a_new_cache_is_at_the_latest_version_and_reopens_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "adapter.sqlite3"
    store = await StateStore.open(path)
    await set_room_meta(store, RoomMeta("!room", "lobby", "@alice:localhost", "!space"))
    assert await schema_version(store.conn) == ADAPTER_SCHEMA.latest_version
    await store.close()
    again = await StateStore.open(path)
    assert await get_room_meta(again, "!room") == RoomMeta("!room", "lobby", "@alice:localhost", "!space")
    await again.close()


async def test_a_cache_written_by_a_newer_rpbot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "adapter.sqlite3"
    async with aiosqlite.connect(path) as conn:
        await conn.execute(f"PRAGMA user_version = {ADAPTER_SCHEMA.latest_version + 1}")
        await conn.commit()
    with pytest.raises(SchemaVersionError, match="adapter.sqlite3"):
        await StateStore.open(path)
