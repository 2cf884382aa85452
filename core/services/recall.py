"""What a character recalls for a prompt: witnessed memories, its own scene summaries, digests.

Every read is scoped in SQL to the chat and to what the character witnessed
(`core.state.memory` for event memories and per-POV summaries, which join
`memory_witnesses` on the character too; `core.state.digests` for digests).  Nothing is witness-filtered in
Python.  The only Python-side step is dropping memories a regenerate is about to
replace (`excluding_turn`), memories of turns already shown verbatim in the
prompt's dialogue and memories the prompt holds already (or says the same as one),
which is de-duplication, not access control.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.eventlog import Readable
from core.services.time_recall import memories_from_time
from core.state import digests as digest_state
from core.state import memory as memory_state
from core.state.memory import Memory
from core.storage import StorageError

log = logging.getLogger(__name__)

_search_failure_logged = False

EARLIER_MEMORIES = 12  # of the exchanges just before a prompt's dialogue window
RELEVANT_MEMORIES = 6
RECALLED_SUMMARIES = 2  # of the character's own summaries, after the event memories
QUERY_TERMS = 4  # the player's most distinctive words searched for (cost grows with each term's hits)
SUMMARIES = 4


async def pov_summaries(
    source: Readable, chat_id: str, who: str, limit: int = SUMMARIES, *, recorded_before: int | None = None
) -> list[Memory]:
    """The latest scene summaries written from `who`'s point of view and witnessed by `who`
    (recorded before event `recorded_before`, if given)."""
    return await memory_state.pov_summaries(source, chat_id, who, limit, recorded_before=recorded_before)


async def earlier_memories(
    source: Readable, chat_id: str, who: str, first_shown_turn: int | None, *, excluding_turn: int | None = None,
    limit: int = EARLIER_MEMORIES,
) -> list[Memory]:
    """What `who` remembers of the exchanges just before the prompt's dialogue window (the
    turns the window no longer shows), the newest `limit`, in story order; nothing
    when the window starts at the story's first turn."""
    if first_shown_turn is None:
        return []
    return await memory_state.recent_memories_for(
        source, chat_id, who, limit, kind="event", recorded_before=excluding_turn, turn_before=first_shown_turn
    )


async def recalled_memories(
    source: Readable,
    chat_id: str,
    who: str,
    query: str,
    *,
    leave_out_turns: Collection[int] = (),
    leave_out_memories: Collection[int] = (),
    excluding_turn: int | None = None,
    now: datetime | None = None,
    known_texts: Collection[str] = (),
) -> list[Memory]:
    """Memories `who` witnessed that the player's line brings back: event memories of the time or
    order it names ("when I first woke up", "last night"; with `now`, the story clock), then
    by word relevance, most relevant first; then up to `RECALLED_SUMMARIES` of its own summaries
    (of scenes, or parts of one) that the words bring back.  Left out: memories of turns the
    prompt shows (`leave_out_turns`), summaries of nothing but those, memories it holds already
    (`leave_out_memories`) or says (`known_texts`), a memory saying what another chosen one says, and, for a
    regenerate, the replaced reply's and anything recorded after it."""
    if not query:
        return []
    hits = await _relevant(source, chat_id, who, query, excluding_turn, only="events")
    by_time = await memories_from_time(source, chat_id, who, query, now, recorded_before=excluding_turn) if now else []
    events = _fresh([*by_time, *(h.memory for h in hits)], leave_out_turns,
                    leave_out_memories, excluding_turn, RELEVANT_MEMORIES, said=known_texts)
    own = [h.memory for h in await _relevant(source, chat_id, who, query, excluding_turn, only="summaries",
                                              limit=RECALLED_SUMMARIES * 2) if h.memory.pov == who]
    summaries = _fresh(own, leave_out_turns, leave_out_memories, excluding_turn, RECALLED_SUMMARIES,
                       said={*known_texts, *(m.text for m in events)})
    return events + summaries


def _fresh(
    memories: list[Memory], leave_out_turns: Collection[int], leave_out_memories: Collection[int],
    excluding_turn: int | None, limit: int, said: Collection[str] = (),
) -> list[Memory]:
    """The first `limit` of `memories` that the prompt does not hold yet, each saying something new."""
    chosen: list[Memory] = []
    texts = set(said)
    for memory in memories:
        turn = memory.source_turn_id if memory.kind == "event" else memory.covers_from_turn
        if memory.memory_id in leave_out_memories or memory.text in texts:
            continue
        if turn is not None and (turn in leave_out_turns or turn == excluding_turn):
            continue
        chosen.append(memory)
        texts.add(memory.text)
        if len(chosen) == limit:
            break
    return chosen


def relevance_query(text: str) -> str:
    """The `QUERY_TERMS` longest content words of `text` (longer words are rarer, so they
    select better and match fewer rows), in their original order."""
    terms = [t.strip('"') for t in memory_state.fts_terms(text)]
    keep = set(sorted(terms, key=len, reverse=True)[:QUERY_TERMS])
    return " ".join(t for t in terms if t in keep)


async def _relevant(
    source: Readable, chat_id: str, who: str, text: str, recorded_before: int | None = None,
    only: Literal["events", "summaries"] | None = None, limit: int = RELEVANT_MEMORIES * 2,
) -> list[memory_state.MemoryHit]:
    """Full-text hits (core.state.memory.search_memories); a search the database cannot run
    (an FTS5 feature the local SQLite lacks) degrades to no hits, logged, rather than failing the turn."""
    try:
        return await memory_state.search_memories(
            source, chat_id, who, relevance_query(text), limit, recorded_before=recorded_before,
            only=only,
        )
    except StorageError as error:
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
    digests = await digest_state.digests_for_reply(source, chat_id, who, user_turn_id, created_before=created_before)
    return [DigestNote(d.digest_id, d.text, d.participants, d.status == "pending") for d in digests]
