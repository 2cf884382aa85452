"""Witness isolation, property-based: nobody (character or player) ever reads a memory they did not witness."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.eventlog import open_database
from core.state import memory, players, world
from tests.core.conftest import CAST, STORY_START, add_cast

WORDS = ("lantern", "harbour", "map", "storm", "key", "letter", "knife", "garden", "salt", "bell")
OWNER, FRIEND = "@p:hs", "@q:hs"
VIEWERS = (OWNER, FRIEND, *CAST)


@dataclass(frozen=True)
class PlannedMemory:
    chat: int
    words: tuple[str, ...]
    witnesses: frozenset[str]
    significance: int
    retract: bool


planned_memories = st.builds(
    PlannedMemory,
    chat=st.integers(0, 2),
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(tuple),
    witnesses=st.frozensets(st.sampled_from(VIEWERS), min_size=1),
    significance=st.integers(1, 3),
    retract=st.sampled_from([False, False, False, True]),
)
queries = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join) | st.text(max_size=30)


async def check_isolation(story: list[PlannedMemory], probes: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        db = await open_database(Path(directory) / "engine.sqlite3")
        try:
            await add_cast(db)
            chat_ids = [f"chat-{n}" for n in range(3)]
            for chat_id in chat_ids:
                await world.create_chat(db, owner=OWNER, host="ada", clock=STORY_START, chat_id=chat_id)
                await players.join(db, chat_id, FRIEND)
            live: dict[int, PlannedMemory] = {}
            for planned in story:
                chat_id = chat_ids[planned.chat]
                recorded = await memory.record_memory(
                    db, chat_id, "We spoke of the " + " and the ".join(planned.words) + ".",
                    sorted(planned.witnesses), significance=planned.significance,
                )
                if planned.retract:
                    await memory.retract_memory(db, chat_id, recorded.memory_id)
                else:
                    live[recorded.memory_id] = planned

            for chat_index, chat_id in enumerate(chat_ids):
                for viewer in VIEWERS:
                    visible = {mid for mid, p in live.items() if p.chat == chat_index and viewer in p.witnesses}
                    recent = await memory.recent_memories_for(db, chat_id, viewer, limit=1000)
                    assert {m.memory_id for m in recent} == visible
                    for probe in probes:
                        hits = await memory.search_memories(db, chat_id, viewer, probe, limit=1000)
                        for hit in hits:
                            assert hit.memory.memory_id in visible
                            assert viewer in hit.memory.witnesses and hit.memory.chat_id == chat_id
                        wanted = {w for w in WORDS if w in probe.lower().split()}
                        if wanted and set(probe.lower().split()) <= set(WORDS):
                            expected = {mid for mid in visible if wanted & set(live[mid].words)}
                            assert {h.memory.memory_id for h in hits} == expected
        finally:
            await db.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=st.lists(planned_memories, max_size=25), probes=st.lists(queries, min_size=1, max_size=4))
def test_no_read_returns_an_unwitnessed_memory(story, probes):
    asyncio.run(check_isolation(story, probes))
