"""Memories by story time and order: what a character witnessed in a span of story time, or first.

`memories_between` reads, for one character, the live memories of a span of story time (or of
the whole story), picking the first, the latest or the most significant when there are more than
a limit; `first_memories_for` the story's first.  Constrained in SQL to the chat and to the
witness like every memory read (`core.state.memory`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from core.eventlog import Readable
from core.state.memory import _CHAT_BOUNDS, Memory, _in_chat, _memory, _require_chat_exists, _witnesses_column
from core.state.rows import dialect_of, fetch_all

_SPAN_ORDERS = {  # how `memories_between` picks when the span holds more than `limit`
    "first": "place ASC, m.memory_id ASC",
    "latest": "place DESC, m.memory_id DESC",
    "significant": "m.significance DESC, place ASC, m.memory_id ASC",
}


async def memories_between(
    source: Readable,
    chat_id: str,
    character: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    *,
    order: Literal["first", "latest", "significant"] = "first",
    recorded_before: int | None = None,
) -> list[Memory]:
    """Live memories `character` witnessed in the chat at story times from `start` (included)
    to `end` (excluded; None: unbounded), at most `limit`: the first ones in story order, the
    latest, or the most significant (`order`); returned in story order (story time, then id).
    A reply's memory sits where its first swipe was (`story_places`).  Witness, chat and span
    constrain the SQL, as in `recent_memories_for`."""
    rows = await fetch_all(
        source,
        _in_chat(f"""WITH {_CHAT_BOUNDS}
            SELECT m.*, {_witnesses_column(dialect_of(source))}, coalesce(t.sibling_group, m.recorded_seq) AS place
            FROM memory_witnesses w JOIN memories m ON m.memory_id = w.memory_id
                 LEFT JOIN turns t ON t.turn_id = m.source_turn_id
            WHERE w.witness = :who AND w.memory_id BETWEEN :low AND :high AND m.retracted = 0
              AND (:start IS NULL OR m.story_time >= :start) AND (:end IS NULL OR m.story_time < :end)
              AND (:before IS NULL OR m.recorded_seq < :before)
            ORDER BY {_SPAN_ORDERS[order]} LIMIT :limit"""),
        {"chat_id": chat_id, "who": character, "limit": limit, "before": recorded_before,
         "start": _story_time_text(start), "end": _story_time_text(end)},
    )
    if not rows:
        await _require_chat_exists(source, chat_id)
    return sorted((_memory(r) for r in rows), key=lambda m: (m.story_time, m.memory_id))


async def first_memories_for(
    source: Readable, chat_id: str, character: str, limit: int, *, recorded_before: int | None = None
) -> list[Memory]:
    """The first `limit` live memories `character` witnessed in the chat, in story order."""
    return await memories_between(source, chat_id, character, None, None, limit, recorded_before=recorded_before)


def _story_time_text(moment: datetime | None) -> str | None:
    return None if moment is None else moment.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")
