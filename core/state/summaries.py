"""Summaries a character wrote, by what they cover: a closed scene, a stretch of the open one, the story so far.

All are memories of kind "summary" written from one point of view (`pov`) and read, like every
memory, only by a witness (a join on `memory_witnesses` in the SQL).  `summary_of` says what one
covers; `covers_from_turn` / `covers_to_turn` are the turns it was made from, so what a turn
caused is found by id (`summaries_made_from_turn`), the way edge changes and thread changes are.

- Parts ("part"): a stretch of a scene still going on.  Two adjacent parts are later rolled into
  one covering both; the prompt shows a character's top parts (`scene_parts`: those no other live
  part of the same character contains), recall can still find the smaller ones.
- The story so far ("story"): one text per character rolled up from its older scene summaries;
  its `scene_id` is the newest scene it takes in.  The newest live one is current (`latest_story`).
"""

from __future__ import annotations

from core.eventlog import Readable
from core.state.memory import Memory, _memory, _witnesses_column
from core.state.rows import dialect_of, fetch_all, fetch_one
from core.storage.sql import all_rows, json_items

_LIVE_PARTS_OF = """FROM memories {alias} JOIN memory_witnesses {alias}w
        ON {alias}w.memory_id = {alias}.memory_id AND {alias}w.witness = :who
    WHERE {alias}.scene_id = :scene AND {alias}.pov = :who AND {alias}.kind = 'summary'
      AND {alias}.summary_of = 'part' AND {alias}.retracted = 0
      AND (:before IS NULL OR {alias}.recorded_seq < :before)"""


async def scene_parts(source: Readable, scene_id: int, who: str, *, recorded_before: int | None = None) -> list[Memory]:
    """`who`'s top parts of the scene, in story order: its live parts (recorded before event
    `recorded_before`, if given) that no other such part contains (the larger, or the newer of two
    alike, wins)."""
    rows = await fetch_all(
        source,
        f"""SELECT m.*, {_witnesses_column(dialect_of(source))} {_LIVE_PARTS_OF.format(alias="m")}
              AND NOT EXISTS (SELECT 1 {_LIVE_PARTS_OF.format(alias="o")}
                  AND o.memory_id != m.memory_id
                  AND o.covers_from_turn <= m.covers_from_turn AND o.covers_to_turn >= m.covers_to_turn
                  AND (o.covers_to_turn - o.covers_from_turn > m.covers_to_turn - m.covers_from_turn
                       OR (o.covers_from_turn = m.covers_from_turn AND o.covers_to_turn = m.covers_to_turn
                           AND o.memory_id > m.memory_id)))
            ORDER BY m.covers_from_turn, m.memory_id""",
        {"scene": scene_id, "who": who, "before": recorded_before},
    )
    return [_memory(r) for r in rows]


async def parts_end(source: Readable, scene_id: int, who: str) -> int | None:
    """The last turn of the scene that one of `who`'s live parts covers (None: no part yet)."""
    row = await fetch_one(
        source,
        f"SELECT max(m.covers_to_turn) AS last {_LIVE_PARTS_OF.format(alias='m')}",
        {"scene": scene_id, "who": who, "before": None},
    )
    return None if row is None else row["last"]


async def summaries_made_from_turn(source: Readable, chat_id: str, turn_id: int) -> list[int]:
    """Live parts and stories-so-far made from turn `turn_id` (it lies in the turns they cover),
    to retract when that turn is regenerated or rewound.  Scene summaries are retracted with
    their scene's close (`regenerate.roll_back_scene_close`)."""
    rows = await fetch_all(
        source,
        """SELECT memory_id FROM memories
           WHERE chat_id = ? AND covers_to_turn >= ? AND covers_from_turn <= ? AND retracted = 0
             AND summary_of IN ('part', 'story')
           ORDER BY memory_id""",
        (chat_id, turn_id, turn_id),
    )
    return [r["memory_id"] for r in rows]


async def latest_story(
    source: Readable, chat_id: str, who: str, *, recorded_before: int | None = None
) -> Memory | None:
    """`who`'s current story so far: its newest live one (recorded before `recorded_before`, if given)."""
    row = await fetch_one(
        source,
        f"""SELECT m.*, {_witnesses_column(dialect_of(source))}
            FROM memories m JOIN memory_witnesses w ON w.memory_id = m.memory_id AND w.witness = :who
            WHERE m.chat_id = :chat AND m.pov = :who AND m.kind = 'summary' AND m.summary_of = 'story'
              AND m.retracted = 0 AND (:before IS NULL OR m.recorded_seq < :before)
            ORDER BY m.memory_id DESC LIMIT 1""",
        {"chat": chat_id, "who": who, "before": recorded_before},
    )
    return None if row is None else _memory(row)


async def scene_summaries_to_fold(
    source: Readable, chat_id: str, who: str, *, keep_newest: int, after_scene: int | None
) -> list[Memory]:
    """`who`'s live scene summaries older than its newest `keep_newest` and of scenes after
    `after_scene` (those its story so far has not taken in yet), oldest first."""
    rows = await fetch_all(
        source,
        f"""SELECT * FROM (
                SELECT m.*, {_witnesses_column(dialect_of(source))}
                FROM memories m JOIN memory_witnesses w ON w.memory_id = m.memory_id AND w.witness = :who
                WHERE m.chat_id = :chat AND m.pov = :who AND m.kind = 'summary' AND m.summary_of = 'scene'
                  AND m.retracted = 0
                ORDER BY m.scene_id DESC, m.memory_id DESC {all_rows(dialect_of(source))} OFFSET :keep) AS older
            WHERE :after IS NULL OR scene_id > :after
            ORDER BY scene_id, memory_id""",
        {"chat": chat_id, "who": who, "keep": keep_newest, "after": after_scene},
    )
    return [_memory(r) for r in rows]


async def has_scene_summary(source: Readable, scene_id: int, who: str, *, recorded_before: int | None = None) -> bool:
    """Whether `who` has a live summary of the whole scene (recorded before `recorded_before`, if given)."""
    row = await fetch_one(
        source,
        """SELECT 1 FROM memories WHERE scene_id = ? AND pov = ? AND kind = 'summary' AND summary_of = 'scene'
           AND retracted = 0 AND (? IS NULL OR recorded_seq < ?) LIMIT 1""",
        (scene_id, who, recorded_before, recorded_before),
    )
    return row is not None


async def unsummarized_stretch(source: Readable, scene_id: int) -> tuple[int, int]:
    """(turns, characters of text) of the scene's shown turns after the last one that every
    character present has in a live part: what a new part could be written from."""
    row = await fetch_one(
        source,
        f"""WITH ends(last) AS (
               SELECT (SELECT max(m.covers_to_turn) FROM memories m
                       WHERE m.scene_id = s.scene_id AND m.pov = p.value AND m.kind = 'summary'
                         AND m.summary_of = 'part' AND m.retracted = 0)
               FROM scenes s, {json_items(dialect_of(source), 's.present', 'p')}
               WHERE s.scene_id = :scene AND p.value IN (SELECT character_id FROM characters))
           SELECT count(*) AS turns, coalesce(sum(length(t.text)), 0) AS chars FROM turns t
           WHERE t.scene_id = :scene AND t.superseded_by IS NULL
             AND t.turn_id > coalesce((SELECT min(coalesce(last, 0)) FROM ends), 0)""",
        {"scene": scene_id},
    )
    return (0, 0) if row is None else (row["turns"], row["chars"])
