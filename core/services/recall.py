"""What a character recalls for a prompt: witnessed memories, its own scene summaries, digests.

Every read is scoped in SQL to the chat and to what the character witnessed
(`core.state.memory` for event memories; the per-POV summary query here joins
`memory_witnesses` on the character too).  Nothing is witness-filtered in
Python.  The only Python-side step is dropping memories a regenerate is about to
replace (`excluding_turn`) and memories of turns already shown verbatim in the
prompt's dialogue, which is de-duplication, not access control.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.eventlog import Readable
from core.eventlog.projections import memory_id_range
from core.state import memory as memory_state
from core.state.memory import Memory
from core.state.rows import fetch_all, fetch_one

log = logging.getLogger(__name__)

_search_failure_logged = False

RECENT_MEMORIES = 8
RELEVANT_MEMORIES = 6
QUERY_TERMS = 4  # the player's most distinctive words searched for (cost grows with each term's hits)
SUMMARIES = 4


def _memory(row: Any) -> Memory:
    return Memory(
        row["memory_id"], row["chat_id"], row["scene_id"], row["kind"], row["pov"], row["text"],
        row["significance"], datetime.fromisoformat(row["story_time"]), row["source_turn_id"],
        bool(row["retracted"]), tuple(sorted(json.loads(row["witnesses"]))),
    )


async def _chat_memory_range(source: Readable, chat_id: str) -> tuple[int, int]:
    row = await fetch_one(source, "SELECT chat_num FROM chats WHERE chat_id = ?", (chat_id,))
    assert row is not None, chat_id
    return memory_id_range(row["chat_num"])


async def pov_summaries(
    source: Readable, chat_id: str, who: str, limit: int = SUMMARIES, *, recorded_before: int | None = None
) -> list[Memory]:
    """The latest scene summaries written from `who`'s point of view and witnessed by `who`
    (recorded before event `recorded_before`, if given)."""
    low, high = await _chat_memory_range(source, chat_id)
    rows = await fetch_all(
        source,
        """SELECT m.*, (SELECT json_group_array(witness) FROM memory_witnesses mw
                        WHERE mw.memory_id = m.memory_id) AS witnesses
           FROM memory_witnesses w JOIN memories m ON m.memory_id = w.memory_id
           WHERE w.witness = :who AND w.memory_id BETWEEN :low AND :high
             AND m.kind = 'summary' AND m.pov = :who AND m.retracted = 0
             AND (:before IS NULL OR m.recorded_seq < :before)
           ORDER BY w.memory_id DESC LIMIT :limit""",
        {"who": who, "low": low, "high": high, "limit": limit, "before": recorded_before},
    )
    return [_memory(r) for r in reversed(rows)]


async def memories_for_prompt(
    source: Readable,
    chat_id: str,
    who: str,
    query: str,
    *,
    shown_turn_ids: Collection[int] = (),
    excluding_turn: int | None = None,
) -> list[Memory]:
    """Event memories `who` witnessed: the most relevant to `query`, then the most recent.

    Memories caused by turns in `shown_turn_ids` (already in the prompt's dialogue)
    or by `excluding_turn` (the reply being regenerated) are left out, and so is
    everything recorded after `excluding_turn` (a regenerate sees the story as it
    stood at the reply it replaces). In story order, oldest first (`_story_order`).
    """
    def wanted(memory: Memory) -> bool:
        turn = memory.source_turn_id
        return turn is None or (turn != excluding_turn and turn not in shown_turn_ids)

    recent = await memory_state.recent_memories_for(
        source, chat_id, who, RECENT_MEMORIES + len(shown_turn_ids) + 1, kind="event", recorded_before=excluding_turn
    )
    hits = await _relevant(source, chat_id, who, query, excluding_turn) if query else []
    chosen: dict[int, Memory] = {}
    for memory in [h.memory for h in hits if h.memory.kind == "event"]:
        if wanted(memory) and len(chosen) < RELEVANT_MEMORIES:
            chosen[memory.memory_id] = memory
    for memory in reversed([m for m in recent if wanted(m)][-RECENT_MEMORIES:]):
        chosen.setdefault(memory.memory_id, memory)
    order = await _story_order(source, list(chosen))
    return sorted(chosen.values(), key=lambda m: (order.get(m.memory_id, 0), m.memory_id))


async def _story_order(source: Readable, memory_ids: list[int]) -> dict[int, int]:
    """Where each memory sits in the story: a reply's memory at its first swipe's place (so a
    regenerated reply is remembered where the reply it replaced was), others where recorded."""
    if not memory_ids:
        return {}
    rows = await fetch_all(
        source,
        f"""SELECT m.memory_id, coalesce(t.sibling_group, m.recorded_seq) AS place
            FROM memories m LEFT JOIN turns t ON t.turn_id = m.source_turn_id
            WHERE m.memory_id IN ({", ".join("?" * len(memory_ids))})""",
        memory_ids,
    )
    return {r["memory_id"]: r["place"] for r in rows}


def relevance_query(text: str) -> str:
    """The `QUERY_TERMS` longest content words of `text` (longer words are rarer, so they
    select better and match fewer rows), in their original order."""
    terms = [t.strip('"') for t in memory_state.fts_terms(text)]
    keep = set(sorted(terms, key=len, reverse=True)[:QUERY_TERMS])
    return " ".join(t for t in terms if t in keep)


async def _relevant(
    source: Readable, chat_id: str, who: str, text: str, recorded_before: int | None = None
) -> list[memory_state.MemoryHit]:
    """Full-text hits (core.state.memory.search_memories); a search the local SQLite cannot
    run (an FTS5 feature it lacks) degrades to no hits, logged, rather than failing the turn."""
    try:
        return await memory_state.search_memories(
            source, chat_id, who, relevance_query(text), RELEVANT_MEMORIES * 2, recorded_before=recorded_before
        )
    except sqlite3.OperationalError as error:
        global _search_failure_logged
        if not _search_failure_logged:
            _search_failure_logged = True
            log.warning("memory search unavailable (%s); prompts use recent memories only", error)
        return []


@dataclass(frozen=True)
class DigestNote:
    digest_id: int
    text: str
    participants: tuple[str, ...]
    pending: bool


async def digests_for_reply(
    source: Readable, chat_id: str, who: str, user_turn_id: int | None, *, created_before: int | None = None
) -> list[DigestNote]:
    """Meanwhile digests the reply to `user_turn_id` surfaces to `who`: pending ones, and
    those already consumed by that same user turn (so a regenerate sees them again),
    limited in SQL to digests whose participants include `who` (a character learns
    only the off-screen scenes it took part in); with `created_before`, only those
    created before that event (not a meanwhile played after the reply a regenerate replaces)."""
    rows = await fetch_all(
        source,
        """SELECT digest_id, text, participants, status FROM digests
           WHERE chat_id = :chat AND (status = 'pending' OR consumed_by_turn = :turn)
             AND EXISTS (SELECT 1 FROM json_each(digests.participants) p WHERE p.value = :who)
             AND (:before IS NULL OR digest_id < :before)
           ORDER BY digest_id""",
        {"chat": chat_id, "turn": user_turn_id, "who": who, "before": created_before},
    )
    return [DigestNote(r["digest_id"], r["text"], tuple(json.loads(r["participants"])), r["status"] == "pending")
            for r in rows]
