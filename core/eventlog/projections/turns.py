"""Projectors for turns: recording, truncation, swipes (superseding siblings), taking back, edits.

A turn is witnessed (`turn_witnesses`) by the players playing and the chat's cast when it is
recorded (a new take of a reply, by whoever witnessed that reply).  A player's line names its author (an older story's "you": its owner), and, in a
round, the last line of the round, whose reply answers it too (`answered_with`).  A turn
starts its own sibling group (group id = its turn id).  A turn recorded with `supersedes=X`
joins X's group and becomes the shown one; X (which must be the shown turn of its group, or
withdrawn) gets `superseded_by` set unless it was withdrawn.
`turn_superseded` switches the shown sibling within a group (withdrawn siblings stay withdrawn).

A withdrawn turn (`turn_withdrawn`: taken back by an edit or a rewind) is superseded by
itself (`superseded_by = turn_id`): replaced by nothing, so every read of shown turns
(`superseded_by IS NULL`) leaves it out, and it is never shown again as a take.
`turn_edited` replaces a player's line's text (and the received line's, which is owed an
answer again); `turn_continued` appends to a reply.
"""

from __future__ import annotations

from core.errors import ConflictError, IllegalTransitionError, TurnNotFoundError
from core.eventlog.events import TurnContinued, TurnEdited, TurnRecorded, TurnSuperseded, TurnTruncated, TurnWithdrawn
from core.eventlog.projections.base import (
    as_player,
    chat_clock,
    fetch_one,
    projects,
    require_row,
    scene_or_open_main,
    story_time_text,
)
from core.storage import Connection, Row


def _insert_turn(open_main_scene: bool) -> str:
    """The new turn's row, its scene and time taken from the chat where not given (the open main
    scene, if `open_main_scene`; the story clock): one statement, which inserts nothing when the
    chat holds a turn of that source already, or the chat or a given scene is not there."""
    scene = ("(SELECT s.scene_id FROM scenes s WHERE s.chat_id = c.chat_id AND s.kind = 'main' AND s.closed_at IS NULL)"
             if open_main_scene else ":scene_id")
    return f"""
    INSERT INTO turns (turn_id, chat_id, scene_id, role, speaker, text, source_id,
                       story_time, truncated, sibling_group, speaker_name, answered_with)
    SELECT :seq, c.chat_id, {scene}, :role, :speaker, :text, :source_id,
           COALESCE(:story_time, c.clock), :truncated, :sibling_group, :speaker_name, :answered_with
    FROM chats c
    WHERE c.chat_id = :chat_id
      AND NOT EXISTS (SELECT 1 FROM turns d WHERE d.chat_id = c.chat_id AND d.source_id = :source_id)
      AND (:checked_scene IS NULL
           OR EXISTS (SELECT 1 FROM scenes s WHERE s.scene_id = :checked_scene AND s.chat_id = c.chat_id))
    RETURNING turn_id"""


_INSERT_TURN = {open_main_scene: _insert_turn(open_main_scene) for open_main_scene in (False, True)}


async def _explain_rejected_turn(conn: Connection, p: TurnRecorded) -> None:
    if p.source_id is not None:
        duplicate = await fetch_one(
            conn, "SELECT turn_id FROM turns WHERE chat_id = ? AND source_id = ?", (p.chat_id, p.source_id)
        )
        if duplicate is not None:
            raise ConflictError(
                f"chat {p.chat_id!r} already has turn {duplicate['turn_id']} for source {p.source_id!r}"
            )
    await chat_clock(conn, p.chat_id)
    await scene_or_open_main(conn, p.chat_id, p.scene_id)
    raise RuntimeError(f"turn_recorded rejected for no known reason: {p!r}")


@projects(TurnRecorded)
async def _turn_recorded(conn: Connection, seq: int, p: TurnRecorded) -> int:
    old = None
    if p.supersedes is not None:
        old = await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.supersedes, p.chat_id)
        if old["superseded_by"] is not None and not _withdrawn(old):
            raise IllegalTransitionError("turn", p.supersedes, "superseded", "superseded again")
    time_text: str | None = None  # None: the chat's clock
    if p.story_time is not None:
        time_text = story_time_text(p.story_time)
    elif old is not None:
        time_text = old["story_time"]
    new_take = old is not None and not _withdrawn(old)
    turn = {
        "seq": seq, "chat_id": p.chat_id, "role": p.role, "speaker": await as_player(conn, p.chat_id, p.speaker),
        "text": p.text, "source_id": p.source_id, "story_time": time_text, "truncated": int(p.truncated),
        "sibling_group": seq if old is None else old["sibling_group"], "speaker_name": p.speaker_name,
        "answered_with": p.answered_with, "checked_scene": p.scene_id,
        "scene_id": p.scene_id if p.scene_id is not None or old is None else old["scene_id"],
    }
    # The row and what follows from it in one round trip: each later statement writes only if the
    # row was inserted (else the projection explains why not, and nothing else was written).
    inserted = "EXISTS (SELECT 1 FROM turns n WHERE n.turn_id = :turn)"
    if new_take:
        assert old is not None
        # A new take of a reply is said at that reply's moment: witnessed by whoever witnessed it.
        following = [
            (f"""INSERT INTO turn_witnesses (turn_id, witness)
                 SELECT :turn, witness FROM turn_witnesses WHERE turn_id = :old AND {inserted}""",
             {"turn": seq, "old": old["turn_id"]}),
            (f"UPDATE turns SET superseded_by = :turn WHERE turn_id = :old AND {inserted}", {"turn": seq, "old": old["turn_id"]}),
        ]
    else:
        # Witnessed by the players and the chat's cast as they are now (who comes later never sees it).
        following = [(
            f"""INSERT INTO turn_witnesses (turn_id, witness)
                SELECT :turn, player FROM story_players WHERE chat_id = :chat AND active = 1 AND {inserted}
                UNION SELECT :turn, character_id FROM story_cast WHERE chat_id = :chat AND {inserted}""",
            {"turn": seq, "chat": p.chat_id},
        )]
    rows, *_ = await conn.fetch_together([(_INSERT_TURN[p.scene_id is None and old is None], turn), *following])
    if not rows:
        await _explain_rejected_turn(conn, p)
    return seq


def _withdrawn(turn: Row) -> bool:
    return turn["superseded_by"] == turn["turn_id"]


async def _live_turn(conn: Connection, chat_id: str, turn_id: int, change: str) -> Row:
    turn = await require_row(conn, TurnNotFoundError, "turns", "turn_id", turn_id, chat_id)
    if _withdrawn(turn):
        raise IllegalTransitionError("turn", turn_id, "withdrawn", change)
    return turn


@projects(TurnTruncated)
async def _turn_truncated(conn: Connection, seq: int, p: TurnTruncated) -> None:
    await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.turn_id, p.chat_id)
    await conn.execute("UPDATE turns SET text = ?, truncated = 1 WHERE turn_id = ?", (p.text, p.turn_id))
    return None


@projects(TurnSuperseded)
async def _turn_superseded(conn: Connection, seq: int, p: TurnSuperseded) -> None:
    old = await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.turn_id, p.chat_id)
    new = await _live_turn(conn, p.chat_id, p.by_turn_id, "shown again")
    if old["sibling_group"] != new["sibling_group"] or p.turn_id == p.by_turn_id:
        raise IllegalTransitionError("turn", p.turn_id, "sibling group", f"superseded by turn {p.by_turn_id}")
    await conn.execute(
        """UPDATE turns SET superseded_by = ?
           WHERE sibling_group = ? AND turn_id != ? AND (superseded_by IS NULL OR superseded_by != turn_id)""",
        (p.by_turn_id, new["sibling_group"], p.by_turn_id),
    )
    await conn.execute("UPDATE turns SET superseded_by = NULL WHERE turn_id = ?", (p.by_turn_id,))
    return None


@projects(TurnWithdrawn)
async def _turn_withdrawn(conn: Connection, seq: int, p: TurnWithdrawn) -> None:
    await _live_turn(conn, p.chat_id, p.turn_id, "withdrawn")
    await conn.execute("UPDATE turns SET superseded_by = turn_id WHERE turn_id = ?", (p.turn_id,))
    return None


@projects(TurnEdited)
async def _turn_edited(conn: Connection, seq: int, p: TurnEdited) -> None:
    turn = await _live_turn(conn, p.chat_id, p.turn_id, "edited")
    if turn["role"] != "user":
        raise IllegalTransitionError("turn", p.turn_id, turn["role"], "edited (only a player's line is)")
    await conn.execute("UPDATE turns SET text = ? WHERE turn_id = ?", (p.text, p.turn_id))
    if turn["source_id"] is not None:
        await conn.execute(
            "UPDATE lines SET text = ?, answered_seq = NULL WHERE chat_id = ? AND source_id = ?",
            (p.text, p.chat_id, turn["source_id"]),
        )
    return None


@projects(TurnContinued)
async def _turn_continued(conn: Connection, seq: int, p: TurnContinued) -> None:
    await _live_turn(conn, p.chat_id, p.turn_id, "continued")
    await conn.execute(
        "UPDATE turns SET text = text || ?, truncated = ? WHERE turn_id = ?", (p.text, int(p.truncated), p.turn_id)
    )
    return None
