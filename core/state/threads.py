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
from core.state.rows import fetch_all, fetch_one, story_time


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


async def open_thread(target: Writable, chat_id: str, title: str, summary: str = "") -> PlotThread:
    async with writing(target) as tx:
        event = await append_and_apply(tx, "thread_opened", {"chat_id": chat_id, "title": title, "summary": summary})
        assert event.ref is not None
        return await require_thread(tx, event.ref)


async def update_thread(
    target: Writable, chat_id: str, thread_id: int, summary: str, title: str | None = None
) -> None:
    await append_and_apply(target, "thread_updated", {
        "chat_id": chat_id, "thread_id": thread_id, "summary": summary, "title": title,
    })


async def close_thread(target: Writable, chat_id: str, thread_id: int, resolution: str = "") -> None:
    await append_and_apply(target, "thread_closed", {
        "chat_id": chat_id, "thread_id": thread_id, "resolution": resolution,
    })


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
