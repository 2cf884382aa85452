"""What a character knows of the story's plot: open threads and world events, filtered in SQL.

A thread is known to the characters present in a scene that opened or updated it (threads
are detected at a scene's close, `thread_changes.cause_scene_id`); a thread with no scene
behind it is common knowledge.  A world event is known to the witnesses of the turn that
planned it (`world_events.planned_by_turn`); one the player planned by command is a fact of
the world, known to everyone.  `who=None` reads everything (the narrator's view).
"""

from __future__ import annotations

from datetime import datetime

from core.eventlog import Readable
from core.state.plans import WorldEvent, _world_event
from core.state.rows import fetch_all
from core.state.threads import PlotThread, _thread


async def open_threads_known_by(source: Readable, chat_id: str, who: str | None, limit: int = 8) -> list[PlotThread]:
    """The chat's open threads `who` knows of, most recently updated first."""
    rows = await fetch_all(
        source,
        """SELECT t.* FROM plot_threads t
           WHERE t.chat_id = :chat AND t.status = 'open'
             AND (:who IS NULL
                  OR NOT EXISTS (SELECT 1 FROM thread_changes c
                                 WHERE c.thread_id = t.thread_id AND c.cause_scene_id IS NOT NULL)
                  OR EXISTS (SELECT 1 FROM thread_changes c JOIN scenes s ON s.scene_id = c.cause_scene_id,
                                    json_each(s.present) p
                             WHERE c.thread_id = t.thread_id AND p.value = :who))
           ORDER BY t.updated_at DESC, t.thread_id DESC LIMIT :limit""",
        {"chat": chat_id, "who": who, "limit": limit},
    )
    return [_thread(r) for r in rows]


async def world_events_in_view(
    source: Readable, chat_id: str, who: str | None, *, until: datetime, limit: int = 6
) -> list[WorldEvent]:
    """Running world events, and planned ones due by `until` (or overdue), that `who` knows of;
    running first, then soonest due."""
    rows = await fetch_all(
        source,
        """SELECT e.* FROM world_events e
           WHERE e.chat_id = :chat
             AND (e.status = 'started' OR (e.status = 'planned' AND e.due_at IS NOT NULL AND e.due_at <= :until))
             AND (:who IS NULL OR e.planned_by_turn IS NULL
                  OR EXISTS (SELECT 1 FROM turn_witnesses w WHERE w.turn_id = e.planned_by_turn AND w.witness = :who))
           ORDER BY e.status = 'planned', e.due_at, e.world_event_id LIMIT :limit""",
        {"chat": chat_id, "who": who, "until": _iso(until), "limit": limit},
    )
    return [_world_event(r) for r in rows]


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")
