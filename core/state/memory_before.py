"""Memories of what a reply prompt no longer shows verbatim: the exchanges before its window.

`memories_before_turn` reads, for one character, the event memories caused by turns older
than the first turn a prompt's dialogue shows, newest first within a limit, constrained in
SQL to the chat and to the witness like every memory read (`core.state.memory`).
"""

from __future__ import annotations

from core.eventlog import Readable
from core.state.memory import _CHAT_BOUNDS, _WITNESSES_COLUMN, Memory, _in_chat, _memory
from core.state.rows import fetch_all


async def memories_before_turn(
    source: Readable, chat_id: str, who: str, before_turn_id: int, limit: int, *, recorded_before: int | None = None
) -> list[Memory]:
    """The latest `limit` live event memories `who` witnessed whose turn is older than
    `before_turn_id` (memories of no turn are not "before" anything), in story order."""
    rows = await fetch_all(
        source,
        _in_chat(f"""WITH {_CHAT_BOUNDS}
            SELECT m.*, {_WITNESSES_COLUMN}
            FROM memory_witnesses w JOIN memories m ON m.memory_id = w.memory_id
            WHERE w.witness = :who AND w.memory_id BETWEEN :low AND :high
              AND m.retracted = 0 AND m.kind = 'event'
              AND m.source_turn_id IS NOT NULL AND m.source_turn_id < :before_turn
              AND (:before IS NULL OR m.recorded_seq < :before)
            ORDER BY m.source_turn_id DESC, m.memory_id DESC LIMIT :limit"""),
        {"chat_id": chat_id, "who": who, "before_turn": before_turn_id, "limit": limit, "before": recorded_before},
    )
    return [_memory(r) for r in reversed(rows)]
