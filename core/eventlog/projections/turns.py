"""Projectors for turns: recording, truncation, and swipes (superseding siblings).

A turn is witnessed (`turn_witnesses`) by the player and the chat's cast when it is
recorded.  A turn starts its own sibling group (group id = its turn id).  A turn recorded
with `supersedes=X` joins X's group and becomes the shown one; X (which must be
the shown turn of its group) gets `superseded_by` set.  `turn_superseded`
switches the shown sibling within a group.
"""

from __future__ import annotations

import aiosqlite

from core.errors import ConflictError, IllegalTransitionError, TurnNotFoundError
from core.eventlog.events import TurnRecorded, TurnSuperseded, TurnTruncated
from core.eventlog.projections.base import (
    chat_clock,
    fetch_one,
    projects,
    require_row,
    scene_or_open_main,
    story_time_text,
)


@projects(TurnRecorded)
async def _turn_recorded(conn: aiosqlite.Connection, seq: int, p: TurnRecorded) -> int:
    if p.source_id is not None:
        duplicate = await fetch_one(
            conn, "SELECT turn_id FROM turns WHERE chat_id = ? AND source_id = ?", (p.chat_id, p.source_id)
        )
        if duplicate is not None:
            raise ConflictError(
                f"chat {p.chat_id!r} already has turn {duplicate['turn_id']} for source {p.source_id!r}"
            )
    old = None
    if p.supersedes is not None:
        old = await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.supersedes, p.chat_id)
        if old["superseded_by"] is not None:
            raise IllegalTransitionError("turn", p.supersedes, "superseded", "superseded again")
    if p.scene_id is not None or old is None:
        scene_id = await scene_or_open_main(conn, p.chat_id, p.scene_id)
    else:
        scene_id = old["scene_id"]
    if p.story_time is not None:
        time_text = story_time_text(p.story_time)
    elif old is not None:
        time_text = old["story_time"]
    else:
        time_text = await chat_clock(conn, p.chat_id)
    sibling_group = seq if old is None else old["sibling_group"]
    await conn.execute_fetchall(
        """INSERT INTO turns (turn_id, chat_id, scene_id, role, speaker, text, source_id,
                              story_time, truncated, sibling_group)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (seq, p.chat_id, scene_id, p.role, p.speaker, p.text, p.source_id, time_text,
         int(p.truncated), sibling_group),
    )
    # Witnessed by the player and the chat's cast as it is now (a guest added later never sees it).
    await conn.execute_fetchall(
        """INSERT INTO turn_witnesses (turn_id, witness)
           SELECT ?, 'you' UNION SELECT ?, host FROM chats WHERE chat_id = ?
           UNION SELECT ?, guest FROM chats WHERE chat_id = ? AND guest IS NOT NULL""",
        (seq, seq, p.chat_id, seq, p.chat_id),
    )
    if p.supersedes is not None:
        await conn.execute_fetchall("UPDATE turns SET superseded_by = ? WHERE turn_id = ?", (seq, p.supersedes))
    return seq


@projects(TurnTruncated)
async def _turn_truncated(conn: aiosqlite.Connection, seq: int, p: TurnTruncated) -> None:
    await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.turn_id, p.chat_id)
    await conn.execute_fetchall("UPDATE turns SET text = ?, truncated = 1 WHERE turn_id = ?", (p.text, p.turn_id))
    return None


@projects(TurnSuperseded)
async def _turn_superseded(conn: aiosqlite.Connection, seq: int, p: TurnSuperseded) -> None:
    old = await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.turn_id, p.chat_id)
    new = await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.by_turn_id, p.chat_id)
    if old["sibling_group"] != new["sibling_group"] or p.turn_id == p.by_turn_id:
        raise IllegalTransitionError("turn", p.turn_id, "sibling group", f"superseded by turn {p.by_turn_id}")
    await conn.execute_fetchall(
        "UPDATE turns SET superseded_by = ? WHERE sibling_group = ? AND turn_id != ?",
        (p.by_turn_id, new["sibling_group"], p.by_turn_id),
    )
    await conn.execute_fetchall("UPDATE turns SET superseded_by = NULL WHERE turn_id = ?", (p.by_turn_id,))
    return None
