"""Projectors for memories (with their witnesses) and directed relationship edges.

A memory's id packs the chat number and the memory's position in the chat
(`memory_id_range`), so each chat's memories form one rowid range of the FTS5
index.  Retracted memories stay in the table (flagged) but leave the FTS index.

`memory_recorded` is the bulk of all writes, so it is projected in two
statements: an INSERT ... SELECT that checks everything it depends on in its
WHERE clause (no row inserted means a check failed, and only then are the
checks run one by one to raise the right typed error), then the witnesses.
"""

from __future__ import annotations

from core.errors import IllegalTransitionError, MemoryNotFoundError, TurnNotFoundError
from core.eventlog.events import (
    EdgeCleared,
    EdgeSet,
    MemoryForgotten,
    MemoryRecorded,
    MemoryRestored,
    MemoryRetracted,
    MemorySignificanceSet,
)
from core.eventlog.projections.base import (
    MEMORY_ID_BITS,
    as_player,
    as_players,
    chat_clock,
    json_list,
    projects,
    require_known,
    require_row,
    scene_or_open_main,
    story_time_text,
)
from core.storage import Connection, Dialect
from core.storage.sql import json_items


def _insert_memory(dialect: Dialect) -> str:
    return f"""
    INSERT INTO memories (memory_id, chat_id, scene_id, kind, pov, text, significance,
                          story_time, source_turn_id, recorded_seq, summary_of, covers_from_turn, covers_to_turn)
    SELECT COALESCE((SELECT MAX(m.memory_id) FROM memories m
                     WHERE m.memory_id BETWEEN c.chat_num << {MEMORY_ID_BITS}
                                           AND ((c.chat_num + 1) << {MEMORY_ID_BITS}) - 1),
                    c.chat_num << {MEMORY_ID_BITS}) + 1,
           c.chat_id,
           COALESCE(:scene_id, (SELECT s.scene_id FROM scenes s
                                WHERE s.chat_id = c.chat_id AND s.kind = 'main' AND s.closed_at IS NULL)),
           :kind, :pov, :text, :significance, COALESCE(:story_time, c.clock), :source_turn_id, :seq,
           :summary_of, :covers_from, :covers_to
    FROM chats c
    WHERE c.chat_id = :chat_id
      AND NOT EXISTS (SELECT 1 FROM {json_items(dialect, ':witnesses', 'j')}
                      WHERE NOT EXISTS (SELECT 1 FROM characters ch WHERE ch.character_id = j.value)
                        AND NOT EXISTS (SELECT 1 FROM story_players sp
                                        WHERE sp.chat_id = c.chat_id AND sp.player = j.value))
      AND (:scene_id IS NULL
           OR EXISTS (SELECT 1 FROM scenes s WHERE s.scene_id = :scene_id AND s.chat_id = c.chat_id))
      AND (:source_turn_id IS NULL
           OR EXISTS (SELECT 1 FROM turns t WHERE t.turn_id = :source_turn_id AND t.chat_id = c.chat_id))
    RETURNING memory_id"""


_INSERT_MEMORY = {dialect: _insert_memory(dialect) for dialect in Dialect}


def _insert_witnesses(dialect: Dialect) -> str:
    """The witnesses of the memory event `:seq` recorded: the chat's newest memory, if that event's."""
    return f"""
    INSERT INTO memory_witnesses (memory_id, witness)
    SELECT m.memory_id, w.value
    FROM chats c
    JOIN memories m ON m.memory_id = (SELECT MAX(n.memory_id) FROM memories n
                                      WHERE n.memory_id BETWEEN c.chat_num << {MEMORY_ID_BITS}
                                                            AND ((c.chat_num + 1) << {MEMORY_ID_BITS}) - 1),
         {json_items(dialect, ':witnesses', 'w')}
    WHERE c.chat_id = :chat_id AND m.recorded_seq = :seq"""


_INSERT_WITNESSES = {dialect: _insert_witnesses(dialect) for dialect in Dialect}


async def _explain_rejected_memory(conn: Connection, p: MemoryRecorded, witnesses: list[str]) -> None:
    await chat_clock(conn, p.chat_id)
    await require_known(conn, p.chat_id, witnesses)
    await scene_or_open_main(conn, p.chat_id, p.scene_id)
    if p.source_turn_id is not None:
        await require_row(conn, TurnNotFoundError, "turns", "turn_id", p.source_turn_id, p.chat_id)
    raise RuntimeError(f"memory_recorded rejected for no known reason: {p!r}")


@projects(MemoryRecorded)
async def _memory_recorded(conn: Connection, seq: int, p: MemoryRecorded) -> int:
    witnesses = list(dict.fromkeys(await as_players(conn, p.chat_id, p.witnesses)))
    # The row and its witnesses in one round trip: the witnesses' statement finds the memory this
    # event recorded (none if it was rejected: the projection then explains why).
    inserted, _ = await conn.fetch_together([
        (_INSERT_MEMORY[conn.dialect], {
            "chat_id": p.chat_id, "scene_id": p.scene_id, "kind": p.memory_kind, "pov": p.pov, "text": p.text,
            "significance": p.significance,
            "story_time": None if p.story_time is None else story_time_text(p.story_time),
            "source_turn_id": p.source_turn_id, "seq": seq, "witnesses": json_list(witnesses),
            "summary_of": p.summary_of or ("scene" if p.memory_kind == "summary" else None),
            "covers_from": p.covers_from_turn, "covers_to": p.covers_to_turn,
        }),
        (_INSERT_WITNESSES[conn.dialect], {"chat_id": p.chat_id, "seq": seq, "witnesses": json_list(witnesses)}),
    ])
    if not inserted:
        await _explain_rejected_memory(conn, p, witnesses)
    return int(next(iter(inserted))[0])


async def _set_retracted(conn: Connection, chat_id: str, memory_id: int, retracted: bool) -> None:
    memory = await require_row(conn, MemoryNotFoundError, "memories", "memory_id", memory_id, chat_id)
    if bool(memory["retracted"]) == retracted:
        state = "retracted" if retracted else "live"
        raise IllegalTransitionError("memory", memory_id, state, state)
    await conn.execute("UPDATE memories SET retracted = ? WHERE memory_id = ?", (int(retracted), memory_id))


@projects(MemoryRetracted)
async def _memory_retracted(conn: Connection, seq: int, p: MemoryRetracted) -> None:
    await _set_retracted(conn, p.chat_id, p.memory_id, True)
    return None


@projects(MemoryRestored)
async def _memory_restored(conn: Connection, seq: int, p: MemoryRestored) -> None:
    await _set_retracted(conn, p.chat_id, p.memory_id, False)
    return None


@projects(MemoryForgotten)
async def _memory_forgotten(conn: Connection, seq: int, p: MemoryForgotten) -> None:
    await require_row(conn, MemoryNotFoundError, "memories", "memory_id", p.memory_id, p.chat_id)
    witness = await as_player(conn, p.chat_id, p.witness)
    removed = await conn.fetch_all(
        "DELETE FROM memory_witnesses WHERE memory_id = ? AND witness = ? RETURNING witness", (p.memory_id, witness)
    )
    if not removed:
        raise MemoryNotFoundError(p.memory_id, f"{witness!r} does not remember it")
    return None


@projects(MemorySignificanceSet)
async def _memory_significance_set(conn: Connection, seq: int, p: MemorySignificanceSet) -> None:
    await require_row(conn, MemoryNotFoundError, "memories", "memory_id", p.memory_id, p.chat_id)
    await conn.execute(
        "UPDATE memories SET significance = ? WHERE memory_id = ?", (p.significance, p.memory_id)
    )
    return None


@projects(EdgeSet)
async def _edge_set(conn: Connection, seq: int, p: EdgeSet) -> None:
    from_id, to_id = await as_players(conn, p.chat_id, [p.from_id, p.to_id])
    await require_known(conn, p.chat_id, [from_id, to_id])
    await conn.execute(
        """INSERT INTO edges (chat_id, from_id, to_id, affinity, trust, summary, updated_at, updated_seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (chat_id, from_id, to_id) DO UPDATE SET
               affinity = excluded.affinity, trust = excluded.trust, summary = excluded.summary,
               updated_at = excluded.updated_at, updated_seq = excluded.updated_seq""",
        (p.chat_id, from_id, to_id, p.affinity, p.trust, p.summary,
         await chat_clock(conn, p.chat_id), seq),
    )
    await conn.execute(
        """INSERT INTO edge_changes (seq, chat_id, from_id, to_id, affinity, trust, summary, reason, cause_turn_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (seq, p.chat_id, from_id, to_id, p.affinity, p.trust, p.summary, p.reason, p.cause_turn_id),
    )
    return None


@projects(EdgeCleared)
async def _edge_cleared(conn: Connection, seq: int, p: EdgeCleared) -> None:
    from_id, to_id = await as_players(conn, p.chat_id, [p.from_id, p.to_id])
    await conn.execute(
        "DELETE FROM edges WHERE chat_id = ? AND from_id = ? AND to_id = ?", (p.chat_id, from_id, to_id)
    )
    await conn.execute(
        """INSERT INTO edge_changes (seq, chat_id, from_id, to_id, affinity, trust, summary, reason, cause_turn_id, cleared)
           VALUES (?, ?, ?, ?, 0, 0, '', ?, NULL, 1)""",
        (seq, p.chat_id, from_id, to_id, p.reason),
    )
    return None
