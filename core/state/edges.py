"""Directed relationship edges: how `from_id` feels about `to_id`, per chat.

A->B and B->A are independent records (affinity and trust in -100..100, and a
short summary).  Each change is an `edge_set` event carrying the new absolute
values and the reply that caused it; its projection `edge_changes` keeps every
change, so a compensating event can restore any earlier value and a regenerate
finds exactly what a reply changed.  An edge never set reads as neutral; taking
back its first change clears it again (`edge_cleared`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import fetch_all, fetch_one, story_time

SCORE_MIN, SCORE_MAX = -100, 100


@dataclass(frozen=True)
class Edge:
    chat_id: str
    from_id: str
    to_id: str
    affinity: int
    trust: int
    summary: str
    updated_at: datetime | None  # story time of the last change; None if never set


@dataclass(frozen=True)
class EdgeChange:
    seq: int
    affinity: int
    trust: int
    summary: str
    reason: str


def _edge(row: Any) -> Edge:
    return Edge(row["chat_id"], row["from_id"], row["to_id"], row["affinity"], row["trust"],
                row["summary"], story_time(row["updated_at"]))


def _clamp(value: int) -> int:
    return max(SCORE_MIN, min(SCORE_MAX, value))


async def get_edge(source: Readable, chat_id: str, from_id: str, to_id: str) -> Edge:
    row = await fetch_one(
        source, "SELECT * FROM edges WHERE chat_id = ? AND from_id = ? AND to_id = ?", (chat_id, from_id, to_id)
    )
    return Edge(chat_id, from_id, to_id, 0, 0, "", None) if row is None else _edge(row)


async def edges_from(source: Readable, chat_id: str, from_id: str) -> list[Edge]:
    rows = await fetch_all(
        source, "SELECT * FROM edges WHERE chat_id = ? AND from_id = ? ORDER BY to_id", (chat_id, from_id)
    )
    return [_edge(r) for r in rows]


async def edges_in_chat(source: Readable, chat_id: str) -> list[Edge]:
    rows = await fetch_all(source, "SELECT * FROM edges WHERE chat_id = ? ORDER BY from_id, to_id", (chat_id,))
    return [_edge(r) for r in rows]


async def set_edge(
    target: Writable,
    chat_id: str,
    from_id: str,
    to_id: str,
    *,
    affinity: int,
    trust: int,
    summary: str = "",
    reason: str = "",
    cause_turn_id: int | None = None,
) -> Edge:
    """Set the absolute state of from_id -> to_id (the other direction is untouched); `cause_turn_id`
    is the reply whose exchange made the change, undone if that reply is regenerated."""
    async with writing(target) as tx:
        await append_and_apply(tx, "edge_set", {
            "chat_id": chat_id, "from_id": from_id, "to_id": to_id,
            "affinity": affinity, "trust": trust, "summary": summary, "reason": reason,
            "cause_turn_id": cause_turn_id,
        })
        return await get_edge(tx, chat_id, from_id, to_id)


async def clear_edge(target: Writable, chat_id: str, from_id: str, to_id: str, reason: str = "") -> None:
    """The edge goes back to never having been set (compensation)."""
    await append_and_apply(target, "edge_cleared", {"chat_id": chat_id, "from_id": from_id, "to_id": to_id,
                                                    "reason": reason})


async def adjust_edge(
    target: Writable,
    chat_id: str,
    from_id: str,
    to_id: str,
    *,
    affinity_delta: int = 0,
    trust_delta: int = 0,
    summary: str | None = None,
    reason: str = "",
    cause_turn_id: int | None = None,
) -> Edge:
    """Move an edge by deltas (clamped to -100..100), read and written in one transaction."""
    async with writing(target) as tx:
        current = await get_edge(tx, chat_id, from_id, to_id)
        return await set_edge(
            tx, chat_id, from_id, to_id,
            affinity=_clamp(current.affinity + affinity_delta),
            trust=_clamp(current.trust + trust_delta),
            summary=current.summary if summary is None else summary,
            reason=reason,
            cause_turn_id=cause_turn_id,
        )


async def edge_history(source: Readable, chat_id: str, from_id: str, to_id: str) -> list[EdgeChange]:
    """Every change of from_id -> to_id, oldest first."""
    rows = await fetch_all(
        source,
        """SELECT seq, affinity, trust, summary, reason FROM edge_changes
           WHERE chat_id = ? AND from_id = ? AND to_id = ? ORDER BY seq""",
        (chat_id, from_id, to_id),
    )
    return [EdgeChange(r["seq"], r["affinity"], r["trust"], r["summary"], r["reason"]) for r in rows]


@dataclass(frozen=True)
class EdgeChangeRef:
    seq: int
    from_id: str
    to_id: str


async def edge_changes_caused_by(source: Readable, chat_id: str, turn_id: int) -> list[EdgeChangeRef]:
    """The edge changes whose cause is the reply `turn_id`, in log order."""
    rows = await fetch_all(
        source,
        "SELECT seq, from_id, to_id FROM edge_changes WHERE chat_id = ? AND cause_turn_id = ? ORDER BY seq",
        (chat_id, turn_id),
    )
    return [EdgeChangeRef(r["seq"], r["from_id"], r["to_id"]) for r in rows]


async def edge_set_before(source: Readable, chat_id: str, from_id: str, to_id: str, before_seq: int) -> Edge | None:
    """The edge from_id -> to_id as its last change before event `before_seq` left it; None when there was
    none (or that change cleared it)."""
    row = await fetch_one(
        source,
        """SELECT affinity, trust, summary, cleared FROM edge_changes
           WHERE chat_id = ? AND from_id = ? AND to_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1""",
        (chat_id, from_id, to_id, before_seq),
    )
    if row is None or row["cleared"]:
        return None
    return Edge(chat_id, from_id, to_id, row["affinity"], row["trust"], row["summary"], None)


async def edge_updated_seq(source: Readable, chat_id: str, from_id: str, to_id: str) -> int | None:
    """The seq of the event that last changed the edge (None: no such edge)."""
    row = await fetch_one(
        source, "SELECT updated_seq FROM edges WHERE chat_id = ? AND from_id = ? AND to_id = ?",
        (chat_id, from_id, to_id),
    )
    return None if row is None else row["updated_seq"]
