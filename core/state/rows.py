"""Small SQL helpers shared by the read models: fetching rows and decoding columns."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.eventlog.db import Readable, read_connection
from core.eventlog.events import LEGACY_PLAYER
from core.storage import Dialect, Row, SqlParams


def dialect_of(source: Readable) -> Dialect:
    """The SQL dialect `source` speaks (for the fragments of `core.storage.sql`)."""
    return read_connection(source).dialect


async def fetch_one(source: Readable, sql: str, params: SqlParams = ()) -> Row | None:
    return await read_connection(source).fetch_one(sql, params)


async def fetch_all(source: Readable, sql: str, params: SqlParams = ()) -> list[Row]:
    return await read_connection(source).fetch_all(sql, params)


def story_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def json_tuple(text: str | None) -> tuple[Any, ...]:
    return () if text is None else tuple(json.loads(text))


def witness_id(who: str) -> str:
    """`who`, a character or player id to read a witness's rows by.  "you" names nobody since stories
    have several players (it is read as the owner only in older events): asking by it is a mistake
    that would silently find nothing, so it is refused."""
    if who == LEGACY_PLAYER:
        raise ValueError('"you" is no witness: ask by the player\'s id')
    return who


async def fetch_count(source: Readable, sql: str, params: SqlParams = ()) -> int:
    """The single number a `SELECT count(*) ...` answers (0 when it answers no row)."""
    row = await fetch_one(source, sql, params)
    return 0 if row is None else int(row[0])
