"""The turns read model: what was said, in order, with swipes (takes), truncation, edits and take-backs.

A user turn carries the adapter's `source_id` (the Matrix event id): recording
the same source id twice in a chat returns the existing turn and writes nothing.
Regenerating records a new assistant turn with `supersedes=<old turn id>`: both
stay as siblings of one group (the takes) and only one is shown
(`superseded_by IS NULL`).  A withdrawn turn (taken back by an edit or a rewind) is
superseded by itself: it is shown nowhere and is no longer a take; a reply or narration
recorded again under its source id takes its place in its group.  A player's line keeps
the persona name it was spoken under (`speaker_name`); a line of a round names the round's last
line (`answered_with`), whose reply answers every line of the round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.errors import TurnNotFoundError
from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import dialect_of, fetch_all, fetch_count, fetch_one, witness_id
from core.storage.sql import json_items

Role = Literal["user", "assistant", "narration"]


@dataclass(frozen=True)
class Turn:
    turn_id: int
    chat_id: str
    scene_id: int | None
    role: Role
    speaker: str  # a character id, a player id (a player's line), or "narrator"
    text: str
    source_id: str | None
    story_time: datetime
    truncated: bool
    sibling_group: int
    superseded_by: int | None
    speaker_name: str | None = None  # a player's line: the persona name it was spoken under
    answered_with: str | None = None  # a line of a round: the source id of the round's last line

    @property
    def is_shown(self) -> bool:
        return self.superseded_by is None

    @property
    def is_withdrawn(self) -> bool:
        return self.superseded_by == self.turn_id


def _turn(row: Any) -> Turn:
    return Turn(
        row["turn_id"], row["chat_id"], row["scene_id"], row["role"], row["speaker"], row["text"],
        row["source_id"], datetime.fromisoformat(row["story_time"]), bool(row["truncated"]),
        row["sibling_group"], row["superseded_by"], row["speaker_name"], row["answered_with"],
    )


async def record_turn(
    target: Writable,
    chat_id: str,
    role: Role,
    speaker: str,
    text: str,
    *,
    source_id: str | None = None,
    scene_id: int | None = None,
    story_time: datetime | None = None,
    truncated: bool = False,
    supersedes: int | None = None,
    speaker_name: str | None = None,
    answered_with: str | None = None,
) -> tuple[Turn, bool]:
    """Record a turn; returns (turn, created). created is False when source_id was seen before,
    unless that turn was withdrawn and this is not a player's line: then the new turn takes its
    place (the reply to an edited line, say)."""
    async with writing(target) as tx:
        if source_id is not None:
            existing = await get_turn_by_source(tx, chat_id, source_id)
            if existing is not None and not (existing.is_withdrawn and role != "user" and supersedes is None):
                return existing, False
            if existing is not None:
                supersedes, source_id = existing.turn_id, None
        event = await append_and_apply(tx, "turn_recorded", {
            "chat_id": chat_id, "role": role, "speaker": speaker, "text": text, "source_id": source_id,
            "scene_id": scene_id, "story_time": story_time, "truncated": truncated, "supersedes": supersedes,
            "speaker_name": speaker_name, "answered_with": answered_with,
        })
        assert event.ref is not None
        return await require_turn(tx, event.ref), True


async def truncate_turn(target: Writable, chat_id: str, turn_id: int, text: str) -> None:
    """Keep the partial text of a stopped generation and mark the turn truncated."""
    await append_and_apply(target, "turn_truncated", {"chat_id": chat_id, "turn_id": turn_id, "text": text})


async def show_sibling(target: Writable, chat_id: str, shown_turn_id: int, sibling_turn_id: int) -> None:
    """Swipe: show `sibling_turn_id` instead of `shown_turn_id` (same sibling group)."""
    await append_and_apply(target, "turn_superseded", {
        "chat_id": chat_id, "turn_id": shown_turn_id, "by_turn_id": sibling_turn_id,
    })


async def withdraw_turn(target: Writable, chat_id: str, turn_id: int) -> None:
    """Take the turn out of the story (it stays in the log, shown nowhere)."""
    await append_and_apply(target, "turn_withdrawn", {"chat_id": chat_id, "turn_id": turn_id})


async def edit_turn(target: Writable, chat_id: str, turn_id: int, text: str) -> None:
    """The player's line `turn_id` now reads `text`."""
    await append_and_apply(target, "turn_edited", {"chat_id": chat_id, "turn_id": turn_id, "text": text})


async def continue_turn(target: Writable, chat_id: str, turn_id: int, text: str, *, truncated: bool) -> None:
    """Append `text` to the reply `turn_id` (it went on)."""
    await append_and_apply(target, "turn_continued", {
        "chat_id": chat_id, "turn_id": turn_id, "text": text, "truncated": truncated,
    })


async def get_turn(source: Readable, turn_id: int) -> Turn | None:
    row = await fetch_one(source, "SELECT * FROM turns WHERE turn_id = ?", (turn_id,))
    return None if row is None else _turn(row)


async def require_turn(source: Readable, turn_id: int) -> Turn:
    turn = await get_turn(source, turn_id)
    if turn is None:
        raise TurnNotFoundError(turn_id)
    return turn


async def first_take_sources(source: Readable, turn_ids: list[int]) -> dict[int, str]:
    """For each of these turns that is a later take of a reply, the source id of its first take (if it has one)."""
    if not turn_ids:
        return {}
    marks = ", ".join("?" * len(turn_ids))
    rows = await fetch_all(
        source,
        f"""SELECT t.turn_id, f.source_id FROM turns t JOIN turns f ON f.turn_id = t.sibling_group
            WHERE t.turn_id IN ({marks}) AND f.turn_id != t.turn_id AND f.source_id IS NOT NULL""",
        turn_ids,
    )
    return {r["turn_id"]: r["source_id"] for r in rows}


async def round_lines(source: Readable, chat_id: str, last_source_id: str) -> list[Turn]:
    """The shown lines of the round whose last line is `last_source_id`, but that line, in order."""
    rows = await fetch_all(
        source,
        """SELECT * FROM turns WHERE chat_id = ? AND answered_with = ? AND superseded_by IS NULL ORDER BY turn_id""",
        (chat_id, last_source_id),
    )
    return [_turn(r) for r in rows]


async def get_turn_by_source(source: Readable, chat_id: str, source_id: str) -> Turn | None:
    row = await fetch_one(
        source, "SELECT * FROM turns WHERE chat_id = ? AND source_id = ?", (chat_id, source_id)
    )
    return None if row is None else _turn(row)


async def recent_turns(source: Readable, chat_id: str, limit: int = 20, *, witness: str | None = None) -> list[Turn]:
    """The last `limit` shown (not superseded) turns of the chat, oldest first; with `witness`,
    only the turns that character (or player) witnessed, constrained in SQL."""
    params = {"chat": chat_id, "limit": limit, "who": None if witness is None else witness_id(witness)}
    rows = await fetch_all(source, f"SELECT * {_shown(params)} ORDER BY turn_id DESC LIMIT :limit", params)
    return [_turn(r) for r in reversed(rows)]


async def last_turn(source: Readable, chat_id: str) -> Turn | None:
    row = await fetch_one(
        source,
        "SELECT * FROM turns WHERE chat_id = ? AND superseded_by IS NULL ORDER BY turn_id DESC LIMIT 1",
        (chat_id,),
    )
    return None if row is None else _turn(row)


async def sibling_turns(source: Readable, turn_id: int) -> list[Turn]:
    """Every swipe in the turn's sibling group, oldest first (the turn included)."""
    rows = await fetch_all(
        source,
        """SELECT * FROM turns WHERE sibling_group = (SELECT sibling_group FROM turns WHERE turn_id = ?)
           ORDER BY turn_id""",
        (turn_id,),
    )
    return [_turn(r) for r in rows]


async def takes(source: Readable, turn_id: int) -> list[Turn]:
    """The takes of a reply: its sibling group's turns that were not withdrawn, oldest first."""
    return [t for t in await sibling_turns(source, turn_id) if not t.is_withdrawn]


async def shown_story_turns_from(source: Readable, chat_id: str, turn_id: int) -> list[Turn]:
    """The chat's shown main-story turns from `turn_id` on (it included), in order."""
    rows = await fetch_all(
        source,
        """SELECT t.* FROM turns t LEFT JOIN scenes s ON s.scene_id = t.scene_id
           WHERE t.chat_id = ? AND t.turn_id >= ? AND t.superseded_by IS NULL AND (s.kind IS NULL OR s.kind = 'main')
           ORDER BY t.turn_id""",
        (chat_id, turn_id),
    )
    return [_turn(r) for r in rows]


async def latest_line(source: Readable, chat_id: str) -> Turn | None:
    """The player's latest shown line of the main story."""
    row = await fetch_one(
        source,
        """SELECT t.* FROM turns t LEFT JOIN scenes s ON s.scene_id = t.scene_id
           WHERE t.chat_id = ? AND t.role = 'user' AND t.superseded_by IS NULL AND (s.kind IS NULL OR s.kind = 'main')
           ORDER BY t.turn_id DESC LIMIT 1""",
        (chat_id,),
    )
    return None if row is None else _turn(row)


async def scene_turns(source: Readable, scene_id: int) -> list[Turn]:
    """The shown turns of one scene, oldest first (for scene-close summaries)."""
    rows = await fetch_all(
        source, "SELECT * FROM turns WHERE scene_id = ? AND superseded_by IS NULL ORDER BY turn_id", (scene_id,)
    )
    return [_turn(r) for r in rows]


async def count_shown_turns(source: Readable, chat_id: str) -> int:
    return await fetch_count(source, "SELECT count(*) FROM turns WHERE chat_id = ? AND superseded_by IS NULL", (chat_id,))


@dataclass(frozen=True)
class KeyQuote:
    turn_id: int
    speaker: str
    text: str
    speaker_name: str | None = None  # a player's line: the persona name it was said under


async def key_quotes(source: Readable, scene_id: int, pov: str, limit: int) -> list[KeyQuote]:
    """Shown turns of the scene whose live memories, witnessed by `pov`, have significance >= 2:
    the most significant (then latest) `limit`, in story order."""
    rows = await fetch_all(
        source,
        """SELECT t.turn_id, t.speaker, t.text, t.speaker_name, max(m.significance) AS significance
           FROM turns t
           JOIN memories m ON m.source_turn_id = t.turn_id AND m.retracted = 0 AND m.significance >= 2
           JOIN memory_witnesses w ON w.memory_id = m.memory_id AND w.witness = :pov
           WHERE t.scene_id = :scene AND t.superseded_by IS NULL AND t.text != ''
           GROUP BY t.turn_id ORDER BY significance DESC, t.turn_id DESC LIMIT :limit""",
        {"scene": scene_id, "pov": pov, "limit": limit},
    )
    return sorted((KeyQuote(r["turn_id"], r["speaker"], r["text"], r["speaker_name"]) for r in rows),
                  key=lambda q: q.turn_id)


async def shown_story_turns(source: Readable, chat_id: str) -> list[Turn]:
    """The chat's shown turns outside meanwhile scenes (in a main scene or in none), in order."""
    rows = await fetch_all(
        source,
        """SELECT t.* FROM turns t LEFT JOIN scenes s ON s.scene_id = t.scene_id
           WHERE t.chat_id = ? AND t.superseded_by IS NULL AND (s.kind IS NULL OR s.kind = 'main')
           ORDER BY t.turn_id""",
        (chat_id,),
    )
    return [_turn(r) for r in rows]


def _shown(params: dict[str, Any]) -> str:
    """FROM and WHERE of a chat's shown turns (`:chat`), only those `:who` witnessed and with turn_id
    up to `:up_to` where given. A filter not given is left out of the SQL rather than written
    `:who IS NULL OR ...`: PostgreSQL plans an OR'd EXISTS as a subquery reading every turn that
    witness saw in every chat, where a plain EXISTS is a join on this chat's turns."""
    sql = "FROM turns WHERE chat_id = :chat AND superseded_by IS NULL"
    if params.get("up_to") is not None:
        sql += " AND turn_id <= :up_to"
    if params.get("who") is not None:
        sql += " AND EXISTS (SELECT 1 FROM turn_witnesses w WHERE w.turn_id = turns.turn_id AND w.witness = :who)"
    return sql


async def witnessed_turns_up_to(
    source: Readable, chat_id: str, witness: str | None, up_to_turn_id: int | None, limit: int
) -> tuple[list[Turn], int]:
    """The last `limit` shown turns `witness` saw (all, with None) with turn_id <= `up_to_turn_id`,
    oldest first, and how many such turns the chat holds in all (their ordinals end there)."""
    params = {"chat": chat_id, "who": None if witness is None else witness_id(witness), "up_to": up_to_turn_id,
              "limit": limit}
    if limit <= 0:
        return [], await fetch_count(source, f"SELECT count(*) {_shown(params)}", params)
    # The count rides along in the same statement (one round trip, not two).
    rows = await fetch_all(
        source, f"SELECT *, (SELECT count(*) {_shown(params)}) AS shown_total {_shown(params)} ORDER BY turn_id DESC LIMIT :limit",
        params,
    )
    return [_turn(r) for r in reversed(rows)], rows[0]["shown_total"] if rows else 0


async def witnessed_scene_turns(
    source: Readable, scene_id: int, witness: str, *, after_turn_id: int | None = None
) -> list[Turn]:
    """The shown turns of one scene that `witness` saw (after `after_turn_id`, if given), oldest first."""
    rows = await fetch_all(
        source,
        """SELECT * FROM turns WHERE scene_id = :scene AND superseded_by IS NULL
             AND (:after IS NULL OR turn_id > :after)
             AND EXISTS (SELECT 1 FROM turn_witnesses w WHERE w.turn_id = turns.turn_id AND w.witness = :who)
           ORDER BY turn_id""",
        {"scene": scene_id, "after": after_turn_id, "who": witness},
    )
    return [_turn(r) for r in rows]


async def all_shown(source: Readable, turn_ids: list[int]) -> bool:
    """Whether every one of these turns is still shown (none superseded since)."""
    if not turn_ids:
        return True
    marks = ", ".join("?" * len(turn_ids))
    shown = await fetch_count(
        source, f"SELECT count(*) FROM turns WHERE turn_id IN ({marks}) AND superseded_by IS NULL", turn_ids
    )
    return shown == len(set(turn_ids))


async def common_witnesses(source: Readable, turn_ids: list[int]) -> list[str]:
    """Who witnessed every one of these turns, in id order."""
    ids = sorted(set(turn_ids))
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    rows = await fetch_all(
        source,
        f"""SELECT witness FROM turn_witnesses WHERE turn_id IN ({marks})
            GROUP BY witness HAVING count(*) = ? ORDER BY witness""",
        (*ids, len(ids)),
    )
    return [r["witness"] for r in rows]


async def players_who_saw_all(
    source: Readable, scene_id: int, pov: str, from_turn: int, to_turn: int, players: list[str]
) -> list[str]:
    """Those of `players` who witnessed every shown turn of the scene from `from_turn` to `to_turn`
    that `pov` witnessed: who may remember what `pov` tells of that stretch."""
    rows = await fetch_all(
        source,
        f"""SELECT p.value AS player FROM {json_items(dialect_of(source), ':players', 'p')}
           WHERE NOT EXISTS (
               SELECT 1 FROM turns t JOIN turn_witnesses w ON w.turn_id = t.turn_id AND w.witness = :pov
               WHERE t.scene_id = :scene AND t.superseded_by IS NULL AND t.turn_id BETWEEN :first AND :last
                 AND NOT EXISTS (SELECT 1 FROM turn_witnesses v WHERE v.turn_id = t.turn_id AND v.witness = p.value))
           ORDER BY p.key""",
        {"players": json.dumps(players), "pov": pov, "scene": scene_id, "first": from_turn, "last": to_turn},
    )
    return [r["player"] for r in rows]
