"""The event log: append events, apply them to the projections, replay the lot.

- `append_event(tx, kind, payload)` validates and stores one event (no projection).
- `apply_event(tx, event)` updates the projections for one stored event.
- `append_and_apply(target, kind, payload)` does both in one transaction: the
  live path.  Given the `Database` it takes the write lock and opens its own
  transaction; given a `Transaction` it joins it (to make several events atomic).
- `replay(db)` clears every projection and re-applies the whole log in order.

Any error (unknown kind, invalid payload, unknown chat, illegal transition...)
raised inside the transaction rolls it back, so nothing is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import PydanticSerializationError

from core.errors import ChatNotFoundError, ConflictError, InvalidPayloadError
from core.eventlog.db import Database, Transaction, Writable
from core.eventlog.events import ChatCreated, ChatEvent, EventPayload, parse_payload
from core.eventlog.migrations import PROJECTION_TABLES
from core.eventlog.projections import PROJECTORS
from core.storage import Connection, Dialect, Row

REPLAY_BATCH = 2000


@dataclass(frozen=True)
class Event:
    """A stored event. `ref` is the id of the row it created (turn, scene, memory...), if any."""

    seq: int
    kind: str
    chat_id: str | None
    payload: EventPayload
    recorded_at: float
    ref: int | None = None


def _writer(target: Transaction | Connection) -> Connection:
    return target.conn if isinstance(target, Transaction) else target


async def append_event(
    target: Transaction | Connection,
    kind: str,
    payload: EventPayload | Mapping[str, Any],
) -> Event:
    """Validate and store one event inside the caller's open write transaction."""
    conn = _writer(target)
    parsed = parse_payload(kind, payload)
    chat_id = parsed.chat_id if isinstance(parsed, ChatEvent) else None
    recorded_at = time.time()
    try:
        serialized = parsed.model_dump_json()
    except PydanticSerializationError as error:  # text with lone surrogates, structures nested too deeply
        raise InvalidPayloadError(kind, str(error)) from error
    params: tuple[Any, ...] = (kind, chat_id, serialized, recorded_at)
    # The chat check rides in the INSERT itself (one round trip): no row means it failed.
    if chat_id is None:
        guard = ""
    else:
        negation = "NOT " if isinstance(parsed, ChatCreated) else ""
        guard = f" WHERE {negation}EXISTS (SELECT 1 FROM chats WHERE chat_id = ?)"
        params += (chat_id,)
    inserted = await conn.fetch_all(
        f"INSERT INTO events (kind, chat_id, payload, recorded_at) SELECT ?, ?, ?, ?{guard} RETURNING seq", params
    )
    if not inserted:
        if isinstance(parsed, ChatCreated):
            raise ConflictError(f"chat {chat_id!r} already exists")
        raise ChatNotFoundError(chat_id)
    seq = int(next(iter(inserted))[0])
    return Event(seq, kind, chat_id, parsed, recorded_at)


async def apply_event(target: Transaction | Connection, event: Event) -> int | None:
    """Project one stored event; returns the id of the row it created, if any."""
    return await PROJECTORS[event.kind](_writer(target), event.seq, event.payload)


async def append_and_apply(
    target: Writable, kind: str, payload: EventPayload | Mapping[str, Any]
) -> Event:
    """Append one event and apply it atomically; returns the stored event with its `ref`."""
    if isinstance(target, Transaction):
        return await _append_and_apply(target, kind, payload)
    async with target.transaction() as tx:
        return await _append_and_apply(tx, kind, payload)


async def _append_and_apply(tx: Transaction, kind: str, payload: EventPayload | Mapping[str, Any]) -> Event:
    event = await append_event(tx, kind, payload)
    ref = await apply_event(tx, event)
    return Event(event.seq, event.kind, event.chat_id, event.payload, event.recorded_at, ref)


def _event_from_row(row: Row) -> Event:
    payload = parse_payload(row["kind"], json.loads(row["payload"]))
    return Event(row["seq"], row["kind"], row["chat_id"], payload, row["recorded_at"])


async def iter_events(
    conn: Connection, *, chat_id: str | None = None, after_seq: int = 0
) -> AsyncGenerator[Event, None]:
    """Events in log order, fetched in batches (safe to interleave with writes on `conn`)."""
    while True:
        params: tuple[object, ...]
        if chat_id is None:
            sql, params = "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, REPLAY_BATCH)
        else:
            sql = "SELECT * FROM events WHERE chat_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            params = (chat_id, after_seq, REPLAY_BATCH)
        rows = await conn.fetch_all(sql, params)
        if not rows:
            return
        for row in rows:
            yield _event_from_row(row)
        after_seq = rows[-1]["seq"]


async def clear_projections(tx: Transaction) -> None:
    """Empty every projection table (the FTS index follows through its triggers; on PostgreSQL it
    is emptied with them: one TRUNCATE of them all, where deleting row by row would check each
    row's references and fire the index's trigger for each memory; it holds the tables until the
    transaction ends, and a replay is an offline step)."""
    if tx.conn.dialect is Dialect.POSTGRESQL:
        await tx.conn.execute(f"TRUNCATE {', '.join(PROJECTION_TABLES)}, memories_fts")
        return
    for table in PROJECTION_TABLES:
        await tx.conn.execute(f"DELETE FROM {table}")


async def replay(db: Database) -> int:
    """Rebuild every projection from the log in one transaction; returns the number of events."""
    async with db.transaction() as tx:
        return await rebuild_projections(tx)


async def rebuild_projections(tx: Transaction) -> int:
    """Clear every projection and apply the whole log again, inside the caller's transaction."""
    count = 0
    await clear_projections(tx)
    async for event in iter_events(tx.conn):
        await apply_event(tx, event)
        count += 1
    return count
