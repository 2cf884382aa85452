"""The memory read model: what each character (and each player) remembers.

Every memory has witnesses; a character only ever reads memories it witnessed.
Both reads for a character (`search_memories`, `recent_memories_for`) put the
chat and the witness into the SQL itself: the chat as the memory-id range that
belongs to it (memory ids are packed per chat, so FTS5 seeks straight into the
chat's rowids), the witness as a join / EXISTS on `memory_witnesses`.  Nothing
is filtered afterwards in Python, and the cost follows the chat, not the database.

Retracted memories (compensation for a regenerated turn) are never returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.errors import ChatNotFoundError, MemoryNotFoundError
from core.eventlog import Readable, Writable, append_and_apply, read_connection, writing
from core.eventlog.projections.base import MEMORY_ID_BITS, memory_id_range
from core.state.rows import dialect_of, fetch_all, fetch_count, fetch_one, witness_id
from core.storage import Dialect
from core.storage.sql import json_list_agg

# FTS5 query shaping.
MAX_QUERY_TERMS = 6
MAX_TERM_LENGTH = 64
# Per term, only the most recent witnessed matches are ranked.  This bounds the
# cost of very common words however large a chat grows; what is dropped is the
# old tail of a word found in thousands of memories, which a word that common
# (low IDF) and the recency re-rank would rank low anyway.
MAX_HITS_PER_TERM = 1000
# English function words and conversational filler ("do you remember what she
# said about...") carry no topic and match half of everything.
STOPWORDS = frozenset(
    "a about after again all also am an and any anything are as ask asked at back be been before but "
    "by can could did do does doing don else ever for from get got had has have he her here him his "
    "how i if in into is it its just know let like me mean more my no not now of on once one or our "
    "out over please recall remember remind s said say says she should so some something tell than "
    "that the their them then there these they thing things think this those to too up us very was "
    "we were what whatever when where which while who whom why will with would you your".split()
)
# Ranking knobs: significance multiplies the SQL score; recency boosts it in Python.
SIGNIFICANCE_BIAS = 0.25
RECENCY_WEIGHT = 0.3
CANDIDATE_FACTOR = 4


@dataclass(frozen=True)
class Memory:
    memory_id: int
    chat_id: str
    scene_id: int | None
    kind: Literal["event", "summary"]
    pov: str | None
    text: str
    significance: int
    story_time: datetime
    source_turn_id: int | None
    retracted: bool
    witnesses: tuple[str, ...]
    summary_of: Literal["scene", "part", "story"] | None = None  # what a summary covers
    covers_from_turn: int | None = None  # the turns a summary was made from
    covers_to_turn: int | None = None


@dataclass(frozen=True)
class MemoryHit:
    memory: Memory
    relevance: float  # chat-local BM25 (k1 = 0) over the witness's memories, times the significance bias
    score: float  # after the recency re-rank


def _witnesses_column(dialect: Dialect) -> str:
    return (f"(SELECT {json_list_agg(dialect, 'witness')} FROM memory_witnesses mw"
            " WHERE mw.memory_id = m.memory_id) AS witnesses")




def _memory(row: Any) -> Memory:
    return Memory(
        row["memory_id"], row["chat_id"], row["scene_id"], row["kind"], row["pov"], row["text"],
        row["significance"], datetime.fromisoformat(row["story_time"]), row["source_turn_id"],
        bool(row["retracted"]), tuple(sorted(json.loads(row["witnesses"]))),
        row["summary_of"], row["covers_from_turn"], row["covers_to_turn"],
    )


# --- writes ----------------------------------------------------------------------------


async def record_memory(
    target: Writable,
    chat_id: str,
    text: str,
    witnesses: Iterable[str],
    *,
    significance: int = 2,
    kind: Literal["event", "summary"] = "event",
    pov: str | None = None,
    scene_id: int | None = None,
    story_time: datetime | None = None,
    source_turn_id: int | None = None,
    summary_of: Literal["scene", "part", "story"] | None = None,
    covers: tuple[int, int] | None = None,
) -> Memory:
    """Record a memory; `covers` is the (first, last) turn a summary was made from."""
    async with writing(target) as tx:
        event = await append_and_apply(tx, "memory_recorded", {
            "chat_id": chat_id, "text": text, "witnesses": list(witnesses), "significance": significance,
            "memory_kind": kind, "pov": pov, "scene_id": scene_id, "story_time": story_time,
            "source_turn_id": source_turn_id, "summary_of": summary_of,
            "covers_from_turn": covers[0] if covers else None, "covers_to_turn": covers[1] if covers else None,
        })
        assert event.ref is not None
        return await require_memory(tx, event.ref)


async def retract_memory(target: Writable, chat_id: str, memory_id: int, reason: str = "") -> None:
    await append_and_apply(target, "memory_retracted", {"chat_id": chat_id, "memory_id": memory_id, "reason": reason})


async def forget_memory(target: Writable, chat_id: str, memory_id: int, witness: str) -> None:
    """`witness` no longer remembers the memory; others who witnessed it still do."""
    await append_and_apply(target, "memory_forgotten", {"chat_id": chat_id, "memory_id": memory_id, "witness": witness})


async def restore_memory(target: Writable, chat_id: str, memory_id: int) -> None:
    await append_and_apply(target, "memory_restored", {"chat_id": chat_id, "memory_id": memory_id})


async def set_memory_significance(target: Writable, chat_id: str, memory_id: int, significance: int) -> None:
    await append_and_apply(target, "memory_significance_set", {
        "chat_id": chat_id, "memory_id": memory_id, "significance": significance,
    })


# --- reads --------------------------------------------------------------------------------


async def get_memory(source: Readable, memory_id: int) -> Memory | None:
    row = await fetch_one(source, f"SELECT m.*, {_witnesses_column(dialect_of(source))} FROM memories m WHERE memory_id = ?", (memory_id,))
    return None if row is None else _memory(row)


async def require_memory(source: Readable, memory_id: int) -> Memory:
    memory = await get_memory(source, memory_id)
    if memory is None:
        raise MemoryNotFoundError(memory_id)
    return memory


async def memories_from_turn(source: Readable, chat_id: str, turn_id: int) -> list[Memory]:
    """Live memories a turn caused (to retract them when the turn is regenerated)."""
    rows = await fetch_all(
        source,
        f"""SELECT m.*, {_witnesses_column(dialect_of(source))} FROM memories m
            WHERE m.source_turn_id = ? AND m.chat_id = ? AND m.retracted = 0 ORDER BY m.memory_id""",
        (turn_id, chat_id),
    )
    return [_memory(r) for r in rows]


# The chat's memory-id range, computed inside each query (one round trip, not two);
# queries use it as :low / :high through `_in_chat`.
_CHAT_BOUNDS = f"""bounds(low, high) AS MATERIALIZED (
    SELECT chat_num << {MEMORY_ID_BITS}, ((chat_num + 1) << {MEMORY_ID_BITS}) - 1
    FROM chats WHERE chat_id = :chat_id)"""


def _in_chat(sql: str) -> str:
    return sql.replace(":low", "(SELECT low FROM bounds)").replace(":high", "(SELECT high FROM bounds)")


async def _require_chat_exists(source: Readable, chat_id: str) -> None:
    # Only asked when a read came back empty, to tell "nothing" from "no such chat".
    if await fetch_one(source, "SELECT 1 FROM chats WHERE chat_id = ?", (chat_id,)) is None:
        raise ChatNotFoundError(chat_id)


async def recent_memories_for(
    source: Readable,
    chat_id: str,
    character: str,
    limit: int = 20,
    *,
    kind: Literal["event", "summary"] | None = None,
    min_significance: int = 1,
    recorded_before: int | None = None,
    turn_before: int | None = None,
) -> list[Memory]:
    """The latest `limit` live memories `character` witnessed in the chat, oldest first
    (with `recorded_before`, only those recorded before that event: the story as it stood then;
    with `turn_before`, only memories of turns older than that one, as of the exchanges before
    a prompt's dialogue window).

    The witness and the chat constrain the SQL (join on memory_witnesses by
    witness, within the chat's memory-id range); nothing is filtered in Python.
    """
    rows = await fetch_all(
        source,
        _in_chat(f"""WITH {_CHAT_BOUNDS}
            SELECT m.*, {_witnesses_column(dialect_of(source))}
            FROM memory_witnesses w JOIN memories m ON m.memory_id = w.memory_id
            WHERE w.witness = :who AND w.memory_id BETWEEN :low AND :high
              AND m.retracted = 0 AND m.significance >= :min_significance
              AND (:kind IS NULL OR m.kind = :kind) AND (:before IS NULL OR m.recorded_seq < :before)
              AND (:turn_before IS NULL OR m.source_turn_id < :turn_before)
            ORDER BY w.memory_id DESC LIMIT :limit"""),
        {"chat_id": chat_id, "who": witness_id(character), "min_significance": min_significance, "kind": kind,
         "limit": limit,
         "before": recorded_before, "turn_before": turn_before},
    )
    if not rows:
        await _require_chat_exists(source, chat_id)
    return [_memory(r) for r in reversed(rows)]


def fts_terms(query: str) -> list[str]:
    """User text -> FTS5 MATCH operands, each one quoted token (never FTS5 syntax).

    Tokens are runs of word characters, so quotes, operators and other
    punctuation can never reach MATCH.  Stopwords and one-letter tokens are
    dropped unless nothing else is left; at most MAX_QUERY_TERMS terms are kept (the longest).
    """
    tokens = [t[:MAX_TERM_LENGTH] for t in re.findall(r"\w+", query.lower())]
    tokens = list(dict.fromkeys(tokens))
    content = [t for t in tokens if t not in STOPWORDS and len(t) > 1] or tokens
    if len(content) > MAX_QUERY_TERMS:
        keep = set(sorted(content, key=len, reverse=True)[:MAX_QUERY_TERMS])
        content = [t for t in content if t in keep][:MAX_QUERY_TERMS]
    return [f'"{t}"' for t in content]


def _indexed_id(dialect: Dialect) -> str:
    """The memory id of a row of the full-text index (FTS5's rowid; on PostgreSQL a column)."""
    return "memories_fts.rowid" if dialect is Dialect.SQLITE else "memories_fts.memory_id"


def _matches(dialect: Dialect, term: str) -> str:
    """The full-text index's rows holding the term `term` (a parameter holding one `fts_terms` term)."""
    if dialect is Dialect.SQLITE:
        return f"memories_fts MATCH {term}"
    return f"memories_fts.document @@ rpbot_search_query({term})"


def _search_sql(dialect: Dialect, term_count: int, summaries_only: bool = False) -> str:
    # One range-seeked MATCH per term, each already restricted to memories the
    # witness saw, gives chat-local document frequencies without touching other
    # chats (FTS5's bm25() would count every chat's documents for its IDF).
    # Summaries are few: a search of them alone keeps only their matches per term.
    # (Weights are floats on both backends: PostgreSQL's exact numeric would cost milliseconds.)
    indexed = _indexed_id(dialect)
    summary = (f"""AND EXISTS (SELECT 1 FROM memories s WHERE s.memory_id = {indexed}
                              AND s.memory_id BETWEEN :low AND :high
                              AND s.kind = 'summary' AND s.summary_of IN ('scene', 'part'))"""
               if summaries_only else "")
    hits = " UNION ALL ".join(
        f"""SELECT * FROM (
                SELECT {indexed}, {i} FROM memories_fts
                WHERE {_matches(dialect, f":t{i}")} AND {indexed} BETWEEN :low AND :high
                  AND EXISTS (SELECT 1 FROM memory_witnesses w
                              WHERE w.memory_id = {indexed} AND w.witness = :who
                                AND w.memory_id BETWEEN :low AND :high) {summary}
                ORDER BY {indexed} DESC LIMIT :per_term) AS term_{i}"""
        for i in range(term_count)
    )
    return f"""
        WITH hits(memory_id, term) AS ({hits}),
        known(n) AS (
            SELECT count(*) FROM memory_witnesses
            WHERE witness = :who AND memory_id BETWEEN :low AND :high),
        idf(term, weight) AS MATERIALIZED (
            SELECT term, ln(1.0 + CAST((SELECT n FROM known) - count(*) + 0.5 AS DOUBLE PRECISION) / (count(*) + 0.5))
            FROM hits GROUP BY term),
        relevance(memory_id, value) AS (
            SELECT hits.memory_id, sum(idf.weight) FROM hits JOIN idf USING (term)
            GROUP BY hits.memory_id)
        SELECT m.*, {_witnesses_column(dialect)},
               relevance.value * (1.0 + :bias * (m.significance - 1)) AS relevance
        FROM relevance JOIN memories m ON m.memory_id = relevance.memory_id
        WHERE m.retracted = 0 AND (:before IS NULL OR m.recorded_seq < :before)
          AND (:only IS NULL OR (:only = 'events' AND m.kind = 'event')
               OR (:only = 'summaries' AND m.kind = 'summary' AND m.summary_of IN ('scene', 'part')))
        ORDER BY relevance DESC, m.memory_id DESC
        LIMIT :candidates"""


async def search_memories(
    source: Readable,
    chat_id: str,
    character: str,
    query: str,
    limit: int = 8,
    *,
    now: datetime | None = None,
    recorded_before: int | None = None,
    only: Literal["events", "summaries"] | None = None,
) -> list[MemoryHit]:
    """Full-text search of the memories `character` witnessed in one chat, best first.

    Scoping, in SQL, before any ranking: FTS5 MATCH restricted to the chat's
    memory-id range, and EXISTS on memory_witnesses for `character` (a character
    id or a player id); per term, the newest MAX_HITS_PER_TERM such matches.  Ranking,
    in SQL: BM25 with k1 = 0 (sum of the matched terms' IDF, computed over the
    witness's memories in this chat, not the whole database), multiplied by a
    significance bias (1 + SIGNIFICANCE_BIAS * (significance - 1)).  Re-rank, in
    Python: the best `limit * CANDIDATE_FACTOR` candidates get a recency boost
    (RECENCY_WEIGHT / (1 + age in story days), age measured from `now` or the
    newest candidate), then the top `limit` are returned.

    Any user text is safe as `query` (see `fts_terms`); a query with no words
    returns nothing.  With `recorded_before`, only memories recorded before that event count;
    with `only`, only event memories, or only summaries of scenes and parts of scenes (ranked
    apart, so many summaries naming a word never crowd out the exchange that said it).
    """
    terms = fts_terms(query)
    if not terms or limit <= 0:
        return []
    # The chat's memory-id range as values, not computed inside the query: PostgreSQL then plans
    # each term's scan knowing how many of the index's rows the range holds.
    low, high = await _chat_memory_range(source, chat_id)
    params: dict[str, Any] = {f"t{i}": term for i, term in enumerate(terms)}
    params.update(low=low, high=high, who=witness_id(character), bias=SIGNIFICANCE_BIAS, per_term=MAX_HITS_PER_TERM,
                  candidates=limit * CANDIDATE_FACTOR, before=recorded_before, only=only)
    dialect = read_connection(source).dialect
    rows = await fetch_all(source, _search_sql(dialect, len(terms), only == "summaries"), params)
    if not rows:
        return []
    candidates = [(_memory(row), float(row["relevance"])) for row in rows]
    reference = now.replace(tzinfo=None) if now else max(memory.story_time for memory, _ in candidates)
    hits = []
    for memory, relevance in candidates:
        age_days = max(0.0, (reference - memory.story_time).total_seconds() / 86400)
        hits.append(MemoryHit(memory, relevance, relevance * (1.0 + RECENCY_WEIGHT / (1.0 + age_days))))
    hits.sort(key=lambda hit: (hit.score, hit.memory.memory_id), reverse=True)
    return hits[:limit]


async def count_live_memories(source: Readable, chat_id: str) -> int:
    return await fetch_count(source, "SELECT count(*) FROM memories WHERE chat_id = ? AND retracted = 0", (chat_id,))


async def live_summary_ids(source: Readable, scene_id: int, pov: str | None = None) -> list[int]:
    """Ids of the scene's live summaries of the whole scene (with `pov`, only those from that point
    of view); not its parts, nor a story so far that takes it in."""
    rows = await fetch_all(
        source,
        """SELECT memory_id FROM memories WHERE scene_id = ? AND kind = 'summary' AND summary_of = 'scene'
           AND retracted = 0 AND (? IS NULL OR pov = ?)""",
        (scene_id, pov, pov),
    )
    return [r["memory_id"] for r in rows]


async def _chat_memory_range(source: Readable, chat_id: str) -> tuple[int, int]:
    row = await fetch_one(source, "SELECT chat_num FROM chats WHERE chat_id = ?", (chat_id,))
    if row is None:
        raise ChatNotFoundError(chat_id)
    return memory_id_range(row["chat_num"])


async def pov_summaries(
    source: Readable, chat_id: str, who: str, limit: int, *, recorded_before: int | None = None
) -> list[Memory]:
    """The latest `limit` live summaries of whole scenes written from `who`'s point of view and witnessed by `who`
    (recorded before event `recorded_before`, if given), oldest first."""
    low, high = await _chat_memory_range(source, chat_id)
    rows = await fetch_all(
        source,
        f"""SELECT m.*, {_witnesses_column(dialect_of(source))}
            FROM memory_witnesses w JOIN memories m ON m.memory_id = w.memory_id
            WHERE w.witness = :who AND w.memory_id BETWEEN :low AND :high
              AND m.kind = 'summary' AND m.summary_of = 'scene' AND m.pov = :who AND m.retracted = 0
              AND (:before IS NULL OR m.recorded_seq < :before)
            ORDER BY w.memory_id DESC LIMIT :limit""",
        {"who": who, "low": low, "high": high, "limit": limit, "before": recorded_before},
    )
    return [_memory(r) for r in reversed(rows)]


async def story_places(source: Readable, memory_ids: list[int]) -> dict[int, int]:
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


async def scene_summaries(source: Readable, scene_id: int) -> list[Memory]:
    """The scene's live summaries, every point of view, in the order they were recorded."""
    rows = await fetch_all(
        source,
        f"""SELECT m.*, {_witnesses_column(dialect_of(source))} FROM memories m
            WHERE scene_id = ? AND kind = 'summary' AND summary_of = 'scene' AND retracted = 0
            ORDER BY memory_id""",
        (scene_id,),
    )
    return [_memory(r) for r in rows]
