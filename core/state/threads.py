"""Plot threads: open story questions, updated as the story goes, closed when resolved.

Times are chat-clock story times.  Updating or closing a closed thread raises
IllegalTransitionError; `reopen_thread` is the compensation for a close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.errors import ThreadNotFoundError
from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import dialect_of, fetch_all, fetch_count, fetch_one, story_time
from core.storage.sql import json_items


@dataclass(frozen=True)
class PlotThread:
    thread_id: int
    chat_id: str
    title: str
    summary: str
    status: Literal["open", "closed"]
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    resolution: str


def _thread(row: Any) -> PlotThread:
    return PlotThread(
        row["thread_id"], row["chat_id"], row["title"], row["summary"], row["status"],
        datetime.fromisoformat(row["opened_at"]), datetime.fromisoformat(row["updated_at"]),
        story_time(row["closed_at"]), row["resolution"],
    )


async def open_thread(
    target: Writable, chat_id: str, title: str, summary: str = "", *, cause_scene_id: int | None = None
) -> PlotThread:
    async with writing(target) as tx:
        event = await append_and_apply(tx, "thread_opened", {
            "chat_id": chat_id, "title": title, "summary": summary, "cause_scene_id": cause_scene_id,
        })
        assert event.ref is not None
        return await require_thread(tx, event.ref)


async def update_thread(
    target: Writable, chat_id: str, thread_id: int, summary: str, title: str | None = None,
    *, cause_scene_id: int | None = None,
) -> None:
    await append_and_apply(target, "thread_updated", {
        "chat_id": chat_id, "thread_id": thread_id, "summary": summary, "title": title,
        "cause_scene_id": cause_scene_id,
    })


async def close_thread(
    target: Writable, chat_id: str, thread_id: int, resolution: str = "", *, cause_scene_id: int | None = None
) -> None:
    await append_and_apply(target, "thread_closed", {
        "chat_id": chat_id, "thread_id": thread_id, "resolution": resolution, "cause_scene_id": cause_scene_id,
    })


async def withdraw_thread(target: Writable, chat_id: str, thread_id: int) -> None:
    await append_and_apply(target, "thread_withdrawn", {"chat_id": chat_id, "thread_id": thread_id})


@dataclass(frozen=True)
class ThreadChange:
    """One thread event a scene close caused, with the thread as it stood just before it."""

    seq: int
    kind: str
    thread_id: int
    title_before: str | None
    summary_before: str | None


async def thread_changes_caused_by_scene(source: Readable, chat_id: str, scene_id: int) -> list[ThreadChange]:
    """The thread changes detected at `scene_id`'s close, in log order, each with the thread's
    title and summary as its previous opening or update set them."""
    rows = await fetch_all(
        source,
        """SELECT c.seq, c.kind, c.thread_id, before.title AS title_before, before.summary AS summary_before
           FROM thread_changes c
           LEFT JOIN thread_changes before ON before.seq = (
               SELECT max(p.seq) FROM thread_changes p
               WHERE p.thread_id = c.thread_id AND p.seq < c.seq AND p.kind IN ('opened', 'updated'))
           WHERE c.chat_id = ? AND c.cause_scene_id = ?
           ORDER BY c.seq""",
        (chat_id, scene_id),
    )
    return [ThreadChange(r["seq"], f"thread_{r['kind']}", r["thread_id"], r["title_before"], r["summary_before"])
            for r in rows]


async def reopen_thread(target: Writable, chat_id: str, thread_id: int) -> None:
    await append_and_apply(target, "thread_reopened", {"chat_id": chat_id, "thread_id": thread_id})


async def get_thread(source: Readable, thread_id: int) -> PlotThread | None:
    row = await fetch_one(source, "SELECT * FROM plot_threads WHERE thread_id = ?", (thread_id,))
    return None if row is None else _thread(row)


async def require_thread(source: Readable, thread_id: int) -> PlotThread:
    thread = await get_thread(source, thread_id)
    if thread is None:
        raise ThreadNotFoundError(thread_id)
    return thread


async def list_threads(
    source: Readable, chat_id: str, status: Literal["open", "closed"] | None = None
) -> list[PlotThread]:
    rows = await fetch_all(
        source,
        """SELECT * FROM plot_threads WHERE chat_id = :chat_id AND (:status IS NULL OR status = :status)
           ORDER BY thread_id""",
        {"chat_id": chat_id, "status": status},
    )
    return [_thread(r) for r in rows]


async def count_open_threads(source: Readable, chat_id: str) -> int:
    return await fetch_count(source, "SELECT count(*) FROM plot_threads WHERE chat_id = ? AND status = 'open'", (chat_id,))


async def open_threads_known_by(source: Readable, chat_id: str, who: str | None, limit: int = 8) -> list[PlotThread]:
    """The chat's open threads `who` knows of, most recently updated first: a thread is known
    to those present in a scene that opened or changed it (`thread_changes.cause_scene_id`) who
    witnessed every line of that scene (its transcript is what the thread was read from: who came
    in later, or left before its end, does not know it); one with no scene behind it is common
    knowledge; `who=None` reads all (the narrator)."""
    rows = await fetch_all(
        source,
        f"""SELECT t.* FROM plot_threads t
           WHERE t.chat_id = :chat AND t.status = 'open'
             AND (:who IS NULL
                  OR NOT EXISTS (SELECT 1 FROM thread_changes c
                                 WHERE c.thread_id = t.thread_id AND c.cause_scene_id IS NOT NULL)
                  OR EXISTS (SELECT 1 FROM thread_changes c JOIN scenes s ON s.scene_id = c.cause_scene_id,
                                    {json_items(dialect_of(source), 's.present', 'p')}
                             WHERE c.thread_id = t.thread_id AND p.value = :who
                               AND NOT EXISTS (SELECT 1 FROM turns u
                                               WHERE u.scene_id = s.scene_id AND u.superseded_by IS NULL
                                                 AND NOT EXISTS (SELECT 1 FROM turn_witnesses w
                                                                 WHERE w.turn_id = u.turn_id AND w.witness = :who))))
           ORDER BY t.updated_at DESC, t.thread_id DESC LIMIT :limit""",
        {"chat": chat_id, "who": who, "limit": limit},
    )
    return [_thread(r) for r in rows]
