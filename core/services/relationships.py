"""Relationship edges in the turn pipeline: what an exchange shows, prior values, and undo.

An edge changes only on what the exchange shows: after the reply is delivered (never before
its first words), an exchange whose words touch on feelings (`may_touch_relationship`, a
local check: thanks, apologies, insults, lies, promises, touch...) is read by one
classifier call (purpose "relationship") per player whose line it answers, that answers how
the speaker's affinity and trust toward that player moved (-2..+2 each) and a short note of why.  Small talk changes
nothing and costs no call.  Every change is an `edge_set` event naming the reply that
caused it (`cause_turn_id`), so `edge_changes_caused_by` finds exactly what a turn changed.

`prior_edges` is the one implementation of "how the speaker feels about those
present, before turn X" (X = None: now), used by prompt assembly for a new turn
and for a regenerate (which must not see the effects of the reply it replaces);
`restore_edges_caused_by` writes the compensating events of a rollback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel, Field

from core.eventlog import Database, Readable, Transaction
from core.llm.base import ChatMessage, LLMClient
from core.llm.structured import generate_json
from core.state import edges as edge_state
from core.state.edges import Edge, EdgeChangeRef

PURPOSE = "relationship"
MAX_STEP = 2
_FEELING_WORDS = re.compile(
    r"\b(?:thank(?:s|ed|ing)?|grateful|sorry|apologi[sz]e[sd]?|forgive|forgave|love[sd]?|hate[sd]?|trust(?:s|ed)?"
    r"|distrust|lied|liar|lying|lie to|promise[sd]?|swear|swore|betray\w*|insult\w*|fool|idiot|stupid|threat\w*"
    r"|kiss(?:es|ed)?|hug(?:s|ged)?|embrace[sd]?|slap(?:s|ped)?|punch(?:es|ed)?|shove[sd]?|glare[sd]?|scowl(?:s|ed)?"
    r"|angry|furious|afraid|scared|hurt|cruel|kind|kindness|gentle|friend|enemy|hold (?:my|your) hand"
    r"|smile[sd]? warmly)\b",
    re.IGNORECASE,
)


def may_touch_relationship(exchange: str) -> bool:
    """A cheap local check: could this exchange move how the speaker feels about the player?"""
    return _FEELING_WORDS.search(exchange) is not None


class RelationshipChange(BaseModel):
    """The classifier's answer; the default (no change) is the safe one."""

    affinity: int = Field(default=0, ge=-MAX_STEP, le=MAX_STEP)
    trust: int = Field(default=0, ge=-MAX_STEP, le=MAX_STEP)
    why: str = ""


def relationship_messages(speaker_name: str, player_name: str, exchange: str) -> list[ChatMessage]:
    system = (
        f"You read one exchange of a roleplay and judge how it moved {speaker_name}'s feelings toward "
        f"{player_name} (the player). Answer with one JSON object and nothing else. Keys: affinity (an "
        f"integer from -{MAX_STEP} to {MAX_STEP}: how much warmer or colder {speaker_name} now feels), trust "
        f"(an integer from -{MAX_STEP} to {MAX_STEP}: how much more or less {speaker_name} trusts {player_name}), "
        "why (a short phrase, empty when nothing changed). Most exchanges change nothing: answer 0 and 0 "
        "unless the exchange clearly shows it."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": f"The exchange:\n{exchange}"}]


async def classify_exchange_edges(
    db: Database, llm: LLMClient, chat_id: str, *, speaker_id: str, speaker_name: str, player_id: str,
    player_name: str, exchange: str, reply_turn_id: int,
) -> Edge | None:
    """After delivery: one classifier call; the speaker's edge toward the player `player_id` moves
    by what it answers (nothing on no change, bad output or an unreachable model)."""
    change = await generate_json(
        llm, relationship_messages(speaker_name, player_name, exchange), purpose=PURPOSE,
        schema=RelationshipChange, default=RelationshipChange(), max_tokens=200, default_on_llm_error=True,
    )
    if not (change.affinity or change.trust):
        return None
    return await edge_state.adjust_edge(
        db, chat_id, speaker_id, player_id, affinity_delta=change.affinity, trust_delta=change.trust,
        summary=change.why.strip()[:200] or None, reason=change.why.strip()[:200] or "the exchange showed it",
        cause_turn_id=reply_turn_id,
    )


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


async def restore_edges_caused_by(tx: Transaction, chat_id: str, turn_id: int) -> int:
    """Set every edge `turn_id` changed back to its value before the turn (cleared, when the turn
    first set it); returns how many."""
    changes = await edge_changes_caused_by(tx, chat_id, turn_id)
    pairs = list(dict.fromkeys((c.from_id, c.to_id) for c in changes))
    restored = 0
    for from_id, to_id in pairs:
        own = [c for c in changes if (c.from_id, c.to_id) == (from_id, to_id)]
        last_is_own = await edge_state.edge_updated_seq(tx, chat_id, from_id, to_id) == own[-1].seq
        if last_is_own and await edge_state.edge_set_before(tx, chat_id, from_id, to_id, own[0].seq) is None:
            await edge_state.clear_edge(tx, chat_id, from_id, to_id, reason=f"undo of turn {turn_id}")
            restored += 1
            continue
        [before] = await prior_edges(tx, chat_id, from_id, [to_id], excluding_turn=turn_id)
        current = await edge_state.get_edge(tx, chat_id, from_id, to_id)
        if (current.affinity, current.trust, current.summary) == (before.affinity, before.trust, before.summary):
            continue
        await edge_state.set_edge(
            tx, chat_id, from_id, to_id, affinity=before.affinity, trust=before.trust,
            summary=before.summary, reason=f"undo of turn {turn_id} (taken back)",
        )
        restored += 1
    return restored
