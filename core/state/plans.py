"""Planned world events ("the festival starts at dusk") and their lifecycle.

planned -> started -> completed, or -> cancelled from planned or started; any
other change raises IllegalTransitionError and writes nothing.  A compensating
`revert_world_event` steps one transition back (for rolling back a regenerated
turn).  `due_at` and the lifecycle times are chat-clock story times.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.errors import WorldEventNotFoundError
from core.eventlog import Readable, Writable, append_and_apply, writing
from core.eventlog.projections.plot import (
    WORLD_EVENT_REVERSIONS,
    WORLD_EVENT_TRANSITIONS,
)
from core.state.rows import fetch_all, fetch_count, fetch_one, story_time

WorldEventStatus = Literal["planned", "started", "completed", "cancelled"]

__all__ = [
    "WORLD_EVENT_REVERSIONS",
    "WORLD_EVENT_TRANSITIONS",
    "WorldEvent",
    "WorldEventStatus",
    "due_world_events",
    "get_world_event",
    "list_world_events",
    "plan_world_event",
    "require_world_event",
    "revert_world_event",
    "transition_world_event",
    "withdraw_world_event",
    "world_events_due_between",
]


@dataclass(frozen=True)
class WorldEvent:
    world_event_id: int
    chat_id: str
    title: str
    description: str
    status: WorldEventStatus
    due_at: datetime | None
    planned_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


def _world_event(row: Any) -> WorldEvent:
    return WorldEvent(
        row["world_event_id"], row["chat_id"], row["title"], row["description"], row["status"],
        story_time(row["due_at"]), datetime.fromisoformat(row["planned_at"]),
        story_time(row["started_at"]), story_time(row["ended_at"]),
    )


async def plan_world_event(
    target: Writable,
    chat_id: str,
    title: str,
    *,
    description: str = "",
    due_at: datetime | None = None,
    cause_turn_id: int | None = None,
) -> WorldEvent:
    """Plan an event; `cause_turn_id` names the turn it was detected in (regenerating it withdraws it)."""
    async with writing(target) as tx:
        event = await append_and_apply(tx, "world_event_planned", {
            "chat_id": chat_id, "title": title, "description": description, "due_at": due_at,
            "cause_turn_id": cause_turn_id,
        })
        assert event.ref is not None
        return await require_world_event(tx, event.ref)


async def transition_world_event(
    target: Writable,
    chat_id: str,
    world_event_id: int,
    to: Literal["started", "completed", "cancelled"],
    *,
    cause_turn_id: int | None = None,
    at: datetime | None = None,
) -> None:
    """One lifecycle step at story time `at` (None: the chat clock); `cause_turn_id` names the
    turn that caused it (regenerating that turn undoes it)."""
    await append_and_apply(target, "world_event_transitioned", {
        "chat_id": chat_id, "world_event_id": world_event_id, "to": to, "cause_turn_id": cause_turn_id, "at": at,
    })


async def revert_world_event(
    target: Writable, chat_id: str, world_event_id: int, to: Literal["planned", "started"]
) -> None:
    await append_and_apply(target, "world_event_reverted", {
        "chat_id": chat_id, "world_event_id": world_event_id, "to": to,
    })


async def withdraw_world_event(target: Writable, chat_id: str, world_event_id: int) -> None:
    """Remove a still-planned event (compensation for the turn that planned it)."""
    await append_and_apply(target, "world_event_withdrawn", {"chat_id": chat_id, "world_event_id": world_event_id})


async def get_world_event(source: Readable, world_event_id: int) -> WorldEvent | None:
    row = await fetch_one(source, "SELECT * FROM world_events WHERE world_event_id = ?", (world_event_id,))
    return None if row is None else _world_event(row)


async def require_world_event(source: Readable, world_event_id: int) -> WorldEvent:
    event = await get_world_event(source, world_event_id)
    if event is None:
        raise WorldEventNotFoundError(world_event_id)
    return event


async def list_world_events(
    source: Readable, chat_id: str, statuses: Iterable[WorldEventStatus] | None = None
) -> list[WorldEvent]:
    wanted = ["planned", "started", "completed", "cancelled"] if statuses is None else list(statuses)
    marks = ", ".join("?" * len(wanted))
    rows = await fetch_all(
        source,
        f"SELECT * FROM world_events WHERE chat_id = ? AND status IN ({marks}) ORDER BY world_event_id",
        (chat_id, *wanted),
    )
    return [_world_event(r) for r in rows]


async def due_world_events(source: Readable, chat_id: str, until: datetime) -> list[WorldEvent]:
    """Planned events whose due time is at or before `until` (story time), soonest first."""
    rows = await fetch_all(
        source,
        """SELECT * FROM world_events
           WHERE chat_id = ? AND status = 'planned' AND due_at IS NOT NULL AND due_at <= ?
           ORDER BY due_at, world_event_id""",
        (chat_id, until.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")),
    )
    return [_world_event(r) for r in rows]


async def world_events_due_between(source: Readable, chat_id: str, start: datetime, end: datetime) -> list[WorldEvent]:
    """Planned events due from `start` to `end` (story times, both included), soonest first:
    those a time skip from `start` to `end` passes."""
    rows = await fetch_all(
        source,
        """SELECT * FROM world_events
           WHERE chat_id = ? AND status = 'planned' AND due_at IS NOT NULL AND due_at >= ? AND due_at <= ?
           ORDER BY due_at, world_event_id""",
        (chat_id, *(t.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds") for t in (start, end))),
    )
    return [_world_event(r) for r in rows]


async def count_upcoming_events(source: Readable, chat_id: str) -> int:
    return await fetch_count(source, "SELECT count(*) FROM world_events WHERE chat_id = ? AND status = 'planned'", (chat_id,))


# --- what a turn did to world events -------------------------------------------------------


@dataclass(frozen=True)
class WorldTransitionRef:
    seq: int
    world_event_id: int
    to: str


async def world_transitions_caused_by(source: Readable, chat_id: str, turn_id: int) -> list[WorldTransitionRef]:
    """Lifecycle transitions caused by `turn_id`, in log order: those naming it as their cause,
    and ones without a cause recorded after it and before the chat's next turn."""
    rows = await fetch_all(
        source,
        """SELECT seq, world_event_id, status FROM world_event_changes
           WHERE chat_id = :chat AND seq > :turn AND is_undo = 0
             AND (cause_turn_id = :turn
                  OR (cause_turn_id IS NULL
                      AND seq < coalesce((SELECT min(turn_id) FROM turns WHERE chat_id = :chat AND turn_id > :turn),
                                         9e18)))
           ORDER BY seq""",
        {"chat": chat_id, "turn": turn_id},
    )
    return [WorldTransitionRef(r["seq"], r["world_event_id"], r["status"]) for r in rows]


async def world_event_status_before(source: Readable, chat_id: str, world_event_id: int, seq: int) -> str:
    """The world event's status just before event `seq`."""
    row = await fetch_one(
        source,
        """SELECT status FROM world_event_changes WHERE chat_id = ? AND world_event_id = ? AND seq < ?
           ORDER BY seq DESC LIMIT 1""",
        (chat_id, world_event_id, seq),
    )
    return "planned" if row is None else row["status"]


async def world_events_planned_by(source: Readable, chat_id: str, turn_id: int) -> list[int]:
    """Ids of the still-present world events planned from `turn_id`, oldest first."""
    rows = await fetch_all(
        source,
        "SELECT world_event_id FROM world_events WHERE chat_id = ? AND planned_by_turn = ? ORDER BY world_event_id",
        (chat_id, turn_id),
    )
    return [r["world_event_id"] for r in rows]


async def world_events_in_view(
    source: Readable, chat_id: str, who: str | None, *, until: datetime, limit: int = 6
) -> list[WorldEvent]:
    """Running world events, and planned ones due by `until` (or overdue), that `who` knows of;
    running first, then soonest due.  An event is known to the witnesses of the turn that
    planned it (`planned_by_turn`); one the player planned by command is common knowledge;
    `who=None` reads all (the narrator)."""
    rows = await fetch_all(
        source,
        """SELECT e.* FROM world_events e
           WHERE e.chat_id = :chat
             AND (e.status = 'started' OR (e.status = 'planned' AND e.due_at IS NOT NULL AND e.due_at <= :until))
             AND (:who IS NULL OR e.planned_by_turn IS NULL
                  OR EXISTS (SELECT 1 FROM turn_witnesses w WHERE w.turn_id = e.planned_by_turn AND w.witness = :who))
           ORDER BY e.status = 'planned', e.due_at, e.world_event_id LIMIT :limit""",
        {"chat": chat_id, "who": who, "until": until.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds"), "limit": limit},
    )
    return [_world_event(r) for r in rows]
