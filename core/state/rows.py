"""Small SQL helpers shared by the read models: fetching rows and decoding columns."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from core.eventlog.db import Readable, read_connection
from core.storage import Row, SqlParams


async def fetch_one(source: Readable, sql: str, params: SqlParams = ()) -> Row | None:
    return await read_connection(source).fetch_one(sql, params)


async def fetch_all(source: Readable, sql: str, params: SqlParams = ()) -> list[Row]:
    return await read_connection(source).fetch_all(sql, params)


def story_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def json_tuple(text: str | None) -> tuple[Any, ...]:
    return () if text is None else tuple(json.loads(text))


async def fetch_count(source: Readable, sql: str, params: SqlParams = ()) -> int:
    """The single number a `SELECT count(*) ...` answers (0 when it answers no row)."""
    row = await fetch_one(source, sql, params)
    return 0 if row is None else int(row[0])
