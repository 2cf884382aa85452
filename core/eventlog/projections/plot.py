"""Projectors for plot threads, planned world events and meanwhile digests.

Lifecycles are enforced here, so an illegal change raises
`IllegalTransitionError` and its event is never written:
- threads: open -> closed (thread_closed), closed -> open (thread_reopened);
  thread_updated only while open;
- world events: see `WORLD_EVENT_TRANSITIONS` and `WORLD_EVENT_REVERSIONS`; a
  still-planned event can be withdrawn (compensation for the turn that planned it);
- digests: pending -> consumed, exactly once; consumed -> pending (digest_returned) when the
  line it was told with is taken back.
"""

from __future__ import annotations

from core.errors import (
    DigestNotFoundError,
    IllegalTransitionError,
    ThreadNotFoundError,
    TurnNotFoundError,
    WorldEventNotFoundError,
)
from core.eventlog.events import (
    DigestConsumed,
    DigestCreated,
    DigestReturned,
    ThreadClosed,
    ThreadOpened,
    ThreadReopened,
    ThreadUpdated,
    ThreadWithdrawn,
    WorldEventPlanned,
    WorldEventReverted,
    WorldEventTransitioned,
    WorldEventWithdrawn,
)
from core.eventlog.projections.base import (
    as_players,
    chat_clock,
    json_list,
    projects,
    require_row,
    scene_or_open_main,
    story_time_text,
)
from core.storage import Connection, Row

WORLD_EVENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"started", "cancelled"}),
    "started": frozenset({"completed", "cancelled"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
# Compensation (rollback of a regenerated turn): one step back.
WORLD_EVENT_REVERSIONS: dict[str, frozenset[str]] = {
    "planned": frozenset(),
    "started": frozenset({"planned"}),
    "completed": frozenset({"started"}),
    "cancelled": frozenset({"planned", "started"}),
}


async def _record_thread_change(
    conn: Connection, seq: int, chat_id: str, thread_id: int, kind: str,
    title: str | None, summary: str | None, cause_scene_id: int | None,
) -> None:
    await conn.execute(
        """INSERT INTO thread_changes (seq, chat_id, thread_id, kind, title, summary, cause_scene_id)
           VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (seq, chat_id, thread_id, kind, title, summary, cause_scene_id),
    )


async def _record_world_event_change(
    conn: Connection, seq: int, chat_id: str, world_event_id: int, status: str, *,
    is_undo: bool, cause_turn_id: int | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO world_event_changes (seq, chat_id, world_event_id, status, is_undo, cause_turn_id)
           VALUES (?, ?, ?, ?, ?, ?)""",
        (seq, chat_id, world_event_id, status, int(is_undo), cause_turn_id),
    )


async def _thread(conn: Connection, chat_id: str, thread_id: int) -> Row:
    return await require_row(conn, ThreadNotFoundError, "plot_threads", "thread_id", thread_id, chat_id)


@projects(ThreadOpened)
async def _thread_opened(conn: Connection, seq: int, p: ThreadOpened) -> int:
    now = await chat_clock(conn, p.chat_id)
    await conn.execute(
        """INSERT INTO plot_threads (thread_id, chat_id, title, summary, status, opened_at, updated_at)
           VALUES (?, ?, ?, ?, 'open', ?, ?)""",
        (seq, p.chat_id, p.title, p.summary, now, now),
    )
    await _record_thread_change(conn, seq, p.chat_id, seq, "opened", p.title, p.summary, p.cause_scene_id)
    return seq


@projects(ThreadUpdated)
async def _thread_updated(conn: Connection, seq: int, p: ThreadUpdated) -> None:
    thread = await _thread(conn, p.chat_id, p.thread_id)
    if thread["status"] != "open":
        raise IllegalTransitionError("plot thread", p.thread_id, thread["status"], "updated")
    await conn.execute(
        "UPDATE plot_threads SET summary = ?, title = COALESCE(?, title), updated_at = ? WHERE thread_id = ?",
        (p.summary, p.title, await chat_clock(conn, p.chat_id), p.thread_id),
    )
    await _record_thread_change(conn, seq, p.chat_id, p.thread_id, "updated", p.title, p.summary, p.cause_scene_id)
    return None


@projects(ThreadClosed)
async def _thread_closed(conn: Connection, seq: int, p: ThreadClosed) -> None:
    thread = await _thread(conn, p.chat_id, p.thread_id)
    if thread["status"] != "open":
        raise IllegalTransitionError("plot thread", p.thread_id, thread["status"], "closed")
    now = await chat_clock(conn, p.chat_id)
    await conn.execute(
        """UPDATE plot_threads SET status = 'closed', resolution = ?, closed_at = ?, updated_at = ?
           WHERE thread_id = ?""",
        (p.resolution, now, now, p.thread_id),
    )
    await _record_thread_change(conn, seq, p.chat_id, p.thread_id, "closed", None, None, p.cause_scene_id)
    return None


@projects(ThreadWithdrawn)
async def _thread_withdrawn(conn: Connection, seq: int, p: ThreadWithdrawn) -> None:
    await _thread(conn, p.chat_id, p.thread_id)
    await conn.execute("DELETE FROM plot_threads WHERE thread_id = ?", (p.thread_id,))
    return None


@projects(ThreadReopened)
async def _thread_reopened(conn: Connection, seq: int, p: ThreadReopened) -> None:
    thread = await _thread(conn, p.chat_id, p.thread_id)
    if thread["status"] != "closed":
        raise IllegalTransitionError("plot thread", p.thread_id, thread["status"], "open")
    await conn.execute(
        """UPDATE plot_threads SET status = 'open', resolution = '', closed_at = NULL, updated_at = ?
           WHERE thread_id = ?""",
        (await chat_clock(conn, p.chat_id), p.thread_id),
    )
    return None


@projects(WorldEventPlanned)
async def _world_event_planned(conn: Connection, seq: int, p: WorldEventPlanned) -> int:
    await conn.execute(
        """INSERT INTO world_events
               (world_event_id, chat_id, title, description, status, due_at, planned_at, planned_by_turn)
           VALUES (?, ?, ?, ?, 'planned', ?, ?, ?)""",
        (seq, p.chat_id, p.title, p.description,
         None if p.due_at is None else story_time_text(p.due_at), await chat_clock(conn, p.chat_id), p.cause_turn_id),
    )
    return seq


async def _world_event(conn: Connection, chat_id: str, world_event_id: int) -> Row:
    return await require_row(
        conn, WorldEventNotFoundError, "world_events", "world_event_id", world_event_id, chat_id
    )


@projects(WorldEventTransitioned)
async def _world_event_transitioned(conn: Connection, seq: int, p: WorldEventTransitioned) -> None:
    event = await _world_event(conn, p.chat_id, p.world_event_id)
    if p.to not in WORLD_EVENT_TRANSITIONS[event["status"]]:
        raise IllegalTransitionError("world event", p.world_event_id, event["status"], p.to)
    now = story_time_text(p.at) if p.at is not None else await chat_clock(conn, p.chat_id)
    if p.to == "started":
        sql = "UPDATE world_events SET status = 'started', started_at = ? WHERE world_event_id = ?"
    else:
        sql = "UPDATE world_events SET status = ?, ended_at = ? WHERE world_event_id = ?"
    params = (now, p.world_event_id) if p.to == "started" else (p.to, now, p.world_event_id)
    await conn.execute(sql, params)
    await _record_world_event_change(conn, seq, p.chat_id, p.world_event_id, p.to, is_undo=False,
                                     cause_turn_id=p.cause_turn_id)
    return None


@projects(WorldEventReverted)
async def _world_event_reverted(conn: Connection, seq: int, p: WorldEventReverted) -> None:
    event = await _world_event(conn, p.chat_id, p.world_event_id)
    if p.to not in WORLD_EVENT_REVERSIONS[event["status"]]:
        raise IllegalTransitionError("world event", p.world_event_id, event["status"], f"reverted to {p.to}")
    if p.to == "planned":
        sql = "UPDATE world_events SET status = 'planned', started_at = NULL, ended_at = NULL WHERE world_event_id = ?"
    else:
        sql = "UPDATE world_events SET status = 'started', ended_at = NULL WHERE world_event_id = ?"
    await conn.execute(sql, (p.world_event_id,))
    await _record_world_event_change(conn, seq, p.chat_id, p.world_event_id, p.to, is_undo=True)
    return None


@projects(WorldEventWithdrawn)
async def _world_event_withdrawn(conn: Connection, seq: int, p: WorldEventWithdrawn) -> None:
    event = await _world_event(conn, p.chat_id, p.world_event_id)
    if event["status"] != "planned":
        raise IllegalTransitionError("world event", p.world_event_id, event["status"], "withdrawn")
    await conn.execute("DELETE FROM world_events WHERE world_event_id = ?", (p.world_event_id,))
    return None


@projects(DigestCreated)
async def _digest_created(conn: Connection, seq: int, p: DigestCreated) -> int:
    scene_id = await scene_or_open_main(conn, p.chat_id, p.scene_id) if p.scene_id is not None else None
    await conn.execute(
        """INSERT INTO digests (digest_id, chat_id, scene_id, text, participants, status, created_at)
           VALUES (?, ?, ?, ?, ?, 'pending', ?)""",
        (seq, p.chat_id, scene_id, p.text, json_list(list(dict.fromkeys(await as_players(conn, p.chat_id, p.participants)))),
         await chat_clock(conn, p.chat_id)),
    )
    return seq


@projects(DigestConsumed)
async def _digest_consumed(conn: Connection, seq: int, p: DigestConsumed) -> None:
    digest = await require_row(conn, DigestNotFoundError, "digests", "digest_id", p.digest_id, p.chat_id)
    if digest["status"] != "pending":
        raise IllegalTransitionError("digest", p.digest_id, digest["status"], "consumed")
    if p.turn_id is not None:
        await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.turn_id, p.chat_id)
    await conn.execute(
        "UPDATE digests SET status = 'consumed', consumed_at = ?, consumed_by_turn = ? WHERE digest_id = ?",
        (await chat_clock(conn, p.chat_id), p.turn_id, p.digest_id),
    )
    return None


@projects(DigestReturned)
async def _digest_returned(conn: Connection, seq: int, p: DigestReturned) -> None:
    digest = await require_row(conn, DigestNotFoundError, "digests", "digest_id", p.digest_id, p.chat_id)
    if digest["status"] != "consumed":
        raise IllegalTransitionError("digest", p.digest_id, digest["status"], "returned")
    await conn.execute(
        "UPDATE digests SET status = 'pending', consumed_at = NULL, consumed_by_turn = NULL WHERE digest_id = ?",
        (p.digest_id,),
    )
    return None
