"""Memory search and prompt-facing reads: scoping, ranking, retraction, FTS-safe queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ChatNotFoundError, IllegalTransitionError, MemoryNotFoundError
from core.state import memory, turns, world
from core.state.memory import fts_terms
from tests.core.conftest import PLAYER, STORY_START, check_fts_index


async def test_search_finds_witnessed_memories_by_words_and_stems(db, chat):
    kept = await memory.record_memory(
        db, "chat-1", "Ada hid the silver key under the lighthouse stairs.", [PLAYER, "ada"]
    )
    await memory.record_memory(db, "chat-1", "Bram sang a song about the sea.", [PLAYER, "bram"])
    hits = await memory.search_memories(db, "chat-1", "ada", "Where are the keys hidden?")
    assert [h.memory.memory_id for h in hits] == [kept.memory_id]
    assert hits[0].memory.witnesses == tuple(sorted(("ada", PLAYER))) and hits[0].score >= hits[0].relevance > 0


async def test_search_is_scoped_to_the_chat(db, chat):
    await world.create_chat(db, owner="@p:hs", host="ada", clock=STORY_START, chat_id="chat-2")
    mine = await memory.record_memory(db, "chat-1", "The lantern went out.", ["ada"])
    await memory.record_memory(db, "chat-2", "The lantern went out.", ["ada"])
    hits = await memory.search_memories(db, "chat-1", "ada", "lantern")
    assert [h.memory.memory_id for h in hits] == [mine.memory_id]
    with pytest.raises(ChatNotFoundError):
        await memory.search_memories(db, "no-such-chat", "ada", "lantern")


async def test_significance_biases_the_ranking(db, chat):
    minor = await memory.record_memory(db, "chat-1", "A gull stole bread at the harbour.", [PLAYER], significance=1)
    major = await memory.record_memory(db, "chat-1", "A gull stole the harbour map.", [PLAYER], significance=3)
    hits = await memory.search_memories(db, "chat-1", PLAYER, "gull harbour")
    assert [h.memory.memory_id for h in hits] == [major.memory_id, minor.memory_id]
    await memory.set_memory_significance(db, "chat-1", major.memory_id, 1)
    await memory.set_memory_significance(db, "chat-1", minor.memory_id, 3)
    hits = await memory.search_memories(db, "chat-1", PLAYER, "gull harbour")
    assert [h.memory.memory_id for h in hits] == [minor.memory_id, major.memory_id]


async def test_rarer_words_weigh_more_and_recency_breaks_ties(db, chat):
    for i in range(5):
        await memory.record_memory(db, "chat-1", f"The tide came in, day {i}.", [PLAYER])
        await world.advance_clock(db, "chat-1", timedelta(days=1))
    rare = await memory.record_memory(db, "chat-1", "The tide brought a drowned compass.", [PLAYER],
                                      story_time=STORY_START)
    hits = await memory.search_memories(db, "chat-1", PLAYER, "tide compass")
    assert hits[0].memory.memory_id == rare.memory_id
    only_tide = await memory.search_memories(db, "chat-1", PLAYER, "tide", limit=6)
    tide_days = [h.memory.text for h in only_tide if "day" in h.memory.text]
    assert tide_days[0] == "The tide came in, day 4." and tide_days[-1] == "The tide came in, day 0."


async def test_retracted_memories_are_never_read_and_can_be_restored(db, chat):
    user_turn, _ = await turns.record_turn(db, "chat-1", "user", PLAYER, "I tell Ada a secret.")
    secret = await memory.record_memory(db, "chat-1", "You told Ada the password is heron.", [PLAYER, "ada"],
                                        source_turn_id=user_turn.turn_id)
    assert [m.memory_id for m in await memory.memories_from_turn(db, "chat-1", user_turn.turn_id)] == [secret.memory_id]
    await memory.retract_memory(db, "chat-1", secret.memory_id, reason="regenerated")
    assert await memory.search_memories(db, "chat-1", "ada", "password heron") == []
    assert await memory.recent_memories_for(db, "chat-1", "ada") == []
    assert await memory.memories_from_turn(db, "chat-1", user_turn.turn_id) == []
    assert (await memory.require_memory(db, secret.memory_id)).retracted
    await check_fts_index(db)
    with pytest.raises(IllegalTransitionError):
        await memory.retract_memory(db, "chat-1", secret.memory_id)
    await memory.restore_memory(db, "chat-1", secret.memory_id)
    restored = await memory.search_memories(db, "chat-1", "ada", "heron")
    assert [h.memory.memory_id for h in restored] == [secret.memory_id]
    await check_fts_index(db)
    with pytest.raises(MemoryNotFoundError):
        await memory.retract_memory(db, "chat-1", 12345)


async def test_recent_memories_for_is_latest_first_limited_then_chronological(db, chat):
    ids = []
    for i in range(6):
        m = await memory.record_memory(db, "chat-1", f"Event {i}", ["ada"] if i != 3 else ["bram"],
                                       significance=3 if i % 2 else 1)
        ids.append(m.memory_id)
    recent = await memory.recent_memories_for(db, "chat-1", "ada", limit=3)
    assert [m.memory_id for m in recent] == [ids[2], ids[4], ids[5]]
    important = await memory.recent_memories_for(db, "chat-1", "ada", min_significance=3)
    assert [m.memory_id for m in important] == [ids[1], ids[5]]


async def test_pov_summaries_are_memories_of_their_pov_only(db, chat):
    scene = await world.open_scene(db, "chat-1", present=[PLAYER, "ada", "bram"])
    for pov in ("ada", "bram"):
        await memory.record_memory(db, "chat-1", f"{pov} remembers the harbour scene.", [pov], kind="summary",
                                   pov=pov, scene_id=scene.scene_id, significance=3)
    ada = await memory.recent_memories_for(db, "chat-1", "ada", kind="summary")
    assert [(m.pov, m.kind, m.scene_id) for m in ada] == [("ada", "summary", scene.scene_id)]
    assert await memory.recent_memories_for(db, "chat-1", PLAYER, kind="summary") == []


@pytest.mark.parametrize("query", [
    'key"', '"', "AND OR NOT", "key*", "NEAR(key lighthouse)", "col:key", "^key", "(((", "-key",
    "key AND", "{key}", "'; DROP TABLE memories; --", "💥 key 💥", "\x00key", "", "   ", "?!.,",
])
async def test_any_query_text_is_safe(db, chat, query):
    await memory.record_memory(db, "chat-1", "The key to the lighthouse.", [PLAYER])
    hits = await memory.search_memories(db, "chat-1", PLAYER, query)
    assert all(h.memory.text == "The key to the lighthouse." for h in hits)


def test_fts_terms_are_quoted_words_without_stopwords():
    assert fts_terms('Where\'s "the" KEY? (lighthouse*)') == ['"key"', '"lighthouse"']
    assert fts_terms("the") == ['"the"']
    assert fts_terms("") == []
    assert len(fts_terms(" ".join(f"word{i}" for i in range(30)))) == 6


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_fts_terms_never_carry_fts_syntax(text):
    for term in fts_terms(text):
        assert term.startswith('"') and term.endswith('"') and '"' not in term[1:-1]
        assert all(ch.isalnum() or ch == "_" for ch in term[1:-1])
