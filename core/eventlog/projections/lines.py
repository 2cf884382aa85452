"""Projector for player lines: received from the adapter, then answered.

A line is received once per (chat, source id): receiving it again is a conflict, so
the caller learns it was already taken.  Answering marks it; answering twice changes
nothing (an answer shown again after a restart is still the same answer).  A line names who
said it (a line of an older story, none: its owner).
"""

from __future__ import annotations

from core.errors import ConflictError
from core.eventlog.events import LineAnswered, LineReceived
from core.eventlog.projections.base import as_player, projects, story_owner
from core.storage import Connection


@projects(LineReceived)
async def _line_received(conn: Connection, seq: int, p: LineReceived) -> None:
    rows = await conn.fetch_all(
        "SELECT 1 FROM lines WHERE chat_id = ? AND source_id = ?", (p.chat_id, p.source_id)
    )
    if rows:
        raise ConflictError(f"chat {p.chat_id!r} already received line {p.source_id!r}")
    player = await story_owner(conn, p.chat_id) if p.player is None else await as_player(conn, p.chat_id, p.player)
    await conn.execute(
        "INSERT INTO lines (chat_id, source_id, text, received_seq, player) VALUES (?, ?, ?, ?, ?)",
        (p.chat_id, p.source_id, p.text, seq, player),
    )
    return None


@projects(LineAnswered)
async def _line_answered(conn: Connection, seq: int, p: LineAnswered) -> None:
    await conn.execute(
        "UPDATE lines SET answered_seq = ? WHERE chat_id = ? AND source_id = ? AND answered_seq IS NULL",
        (seq, p.chat_id, p.source_id),
    )
    return None
