"""Meanwhile scenes: off-screen lines, witnesses without the player, a digest surfaced once."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import InvalidCastError, UnknownCharacterError
from core.llm import FakeLLM
from core.services import meanwhile as meanwhile_service
from core.state import memory as memory_state
from tests.core.story.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, THIRD, collect


def line_by_speaker(messages) -> str:
    system = messages[0]["content"]
    return "Odile whispers about the SMUGGLERS." if f"You are {GUEST_NAME}" in system else "Wren hides the SMUGGLERS' map."


async def test_meanwhile_is_remembered_by_its_two_characters_only(open_engine):
    fake = FakeLLM(routes={"meanwhile": line_by_speaker, "narrate": "Welcome back."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)

    updates = await collect(engine.meanwhile(chat.chat_id, "wren halloway", GUEST.upper(), "at the docks"))

    lines = [u for u in updates if u.done]
    assert [u.speaker_id for u in lines] == [HOST, GUEST] * (meanwhile_service.LINES // 2)
    assert {u.kind for u in updates} == {"reply"} and fake.purposes == ["opening_time"] + ["meanwhile"] * meanwhile_service.LINES
    assert await memory_state.search_memories(engine.db, chat.chat_id, "@p:hs", "smugglers") == []
    assert await engine.search_memory(chat.chat_id, "you", "smugglers") == []
    for who in (HOST, GUEST_NAME):
        found = await engine.search_memory(chat.chat_id, who, "smugglers")
        assert found and all("SMUGGLERS" in m.text for m in found)
    assert await engine.search_memory(chat.chat_id, THIRD, "smugglers") == []

    # The digest comes first on the player's next turn, once.
    first = await collect(engine.post_turn(chat.chat_id, "I'm back. What did I miss?", "$1"))
    assert first[0].kind == "digest" and first[0].done and HOST_NAME in first[0].text
    assert first[-1].kind == "reply"
    second = await collect(engine.post_turn(chat.chat_id, "Anything else?", "$2"))
    assert [u.kind for u in second if u.kind == "digest"] == []
    consumed = await engine.db.reader.fetch_all("SELECT count(*) FROM events WHERE kind = 'digest_consumed'")
    assert consumed[0][0] == 1
    # Re-posting the first line does not surface the digest again.
    again = await collect(engine.post_turn(chat.chat_id, "I'm back. What did I miss?", "$1"))
    assert [u.kind for u in again] == ["reply"]
    # The player's own prompt memories never hold the meanwhile scene.
    assert not any("SMUGGLERS" in m.text for m in
                   await memory_state.recent_memories_for(engine.db, chat.chat_id, "@p:hs", 100))


async def test_meanwhile_rejects_unknown_or_repeated_characters(open_engine):
    engine = await open_engine(FakeLLM(routes={"meanwhile": "..."}))
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    with pytest.raises(UnknownCharacterError):
        await collect(engine.meanwhile(chat.chat_id, HOST, "nobody-at-all"))
    with pytest.raises(InvalidCastError):
        await collect(engine.meanwhile(chat.chat_id, HOST, HOST_NAME))
    with pytest.raises(UnknownCharacterError):
        await engine.search_memory(chat.chat_id, "nobody-at-all", "x")


async def test_cancel_stops_a_meanwhile_scene_and_still_queues_the_digest(open_engine):
    fake = FakeLLM(routes={"meanwhile": "one two three four five six seven eight"}, chunk_delay_s=0.03)
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    updates = []
    async for update in engine.meanwhile(chat.chat_id, HOST, GUEST):
        updates.append(update)
        if len(updates) == 2:
            assert await engine.cancel(chat.chat_id) is True
    assert updates[-1].done and updates[-1].truncated and "eight" not in updates[-1].text
    assert len(fake.calls_for("meanwhile")) == 1
    assert asyncio.all_tasks() == {asyncio.current_task()}
    pending = await engine.db.reader.fetch_all("SELECT count(*) FROM digests WHERE status = 'pending'")
    assert pending[0][0] == 1


async def test_each_character_brings_the_story_into_a_meanwhile_scene(open_engine):
    fake = FakeLLM(routes={"meanwhile": line_by_speaker, "narrate": "The lamp needs oil, and the oil is at the cove."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await engine.greeting(chat.chat_id)
    await collect(engine.post_turn(chat.chat_id, "Where do you keep the lamp oil?", "$1"))
    await collect(engine.meanwhile(chat.chat_id, HOST, GUEST, "at the docks"))

    wren, odile = (c.messages[0]["content"] for c in fake.calls_for("meanwhile")[:2])
    assert "Story time now: Wednesday, April 1, 2026, 9:00 AM (morning)." in wren
    assert "Where the story stands: " in wren  # the story's scenario, not only the two cards
    assert "the oil is at the cove" in wren  # what Wren witnessed
    assert "the oil is at the cove" not in odile  # Odile was not there
