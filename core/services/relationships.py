"""Relationship edges in the turn pipeline: the exchange rule, prior values, and undo.

Rule (deterministic, no model call): each exchange moves the speaker's edge toward
the player ("you") by `EXCHANGE_AFFINITY` affinity.  Every change is an
`edge_set` event naming the reply that caused it (`cause_turn_id`), so
`edge_changes_caused_by` finds exactly what a turn changed.

`prior_edges` is the one implementation of "how the speaker feels about those
present, before turn X" (X = None: now), used by prompt assembly for a new turn
and for a regenerate (which must not see the effects of the reply it replaces);
`restore_edges_caused_by` writes the compensating events of a rollback.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.eventlog import USER, Readable, Transaction
from core.state import edges as edge_state
from core.state.edges import Edge, EdgeChangeRef

EXCHANGE_AFFINITY = 1


async def edge_changes_caused_by(source: Readable, chat_id: str, turn_id: int) -> list[EdgeChangeRef]:
    """The edge changes caused by turn `turn_id`, in log order (they follow the turn)."""
    return await edge_state.edge_changes_caused_by(source, chat_id, turn_id)


async def edge_before(source: Readable, chat_id: str, from_id: str, to_id: str, before_seq: int) -> Edge:
    """The edge from_id -> to_id as the last edge_set before `before_seq` left it (neutral if none)."""
    edge = await edge_state.edge_set_before(source, chat_id, from_id, to_id, before_seq)
    return Edge(chat_id, from_id, to_id, 0, 0, "", None) if edge is None else edge


async def prior_edges(
    source: Readable, chat_id: str, from_id: str, to_ids: Iterable[str], *, excluding_turn: int | None = None
) -> list[Edge]:
    """`from_id`'s edges toward each of `to_ids`, as they stand without `excluding_turn`'s changes.

    Without `excluding_turn`: the current edges.  With it: an edge whose latest
    change was made by that turn reads as it was before the turn's first change
    to it (exactly what a rollback restores).
    """
    changes = await edge_changes_caused_by(source, chat_id, excluding_turn) if excluding_turn else []
    result = []
    for to_id in to_ids:
        if to_id == from_id:
            continue
        current = await edge_state.get_edge(source, chat_id, from_id, to_id)
        own = [c for c in changes if (c.from_id, c.to_id) == (from_id, to_id)]
        if own and await edge_state.edge_updated_seq(source, chat_id, from_id, to_id) == own[-1].seq:
            current = await edge_before(source, chat_id, from_id, to_id, own[0].seq)
        result.append(current)
    return result


async def apply_exchange_edges(tx: Transaction, chat_id: str, reply_turn_id: int, speaker_id: str) -> None:
    """The exchange rule: the speaker warms a little toward the player."""
    await edge_state.adjust_edge(
        tx, chat_id, speaker_id, USER, affinity_delta=EXCHANGE_AFFINITY,
        reason="an exchange with the player", cause_turn_id=reply_turn_id,
    )


async def restore_edges_caused_by(tx: Transaction, chat_id: str, turn_id: int) -> int:
    """Set every edge `turn_id` changed back to its value before the turn; returns how many."""
    changes = await edge_changes_caused_by(tx, chat_id, turn_id)
    pairs = list(dict.fromkeys((c.from_id, c.to_id) for c in changes))
    restored = 0
    for from_id, to_id in pairs:
        [before] = await prior_edges(tx, chat_id, from_id, [to_id], excluding_turn=turn_id)
        current = await edge_state.get_edge(tx, chat_id, from_id, to_id)
        if (current.affinity, current.trust, current.summary) == (before.affinity, before.trust, before.summary):
            continue
        await edge_state.set_edge(
            tx, chat_id, from_id, to_id, affinity=before.affinity, trust=before.trust,
            summary=before.summary, reason=f"undo of turn {turn_id} (regenerated)",
        )
        restored += 1
    return restored
