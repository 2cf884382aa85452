"""The addressee classifier: one request, names or ids accepted, safe fallbacks."""

from __future__ import annotations

import pytest

from core.llm import FakeLLM, LLMTimeoutError
from core.services.addressee import choose_addressee
from core.services.dialogue import load_cast, recent_dialogue
from tests.core.pipeline.conftest import GUEST, GUEST_NAME, HOST, collect


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"speaker": GUEST, "confidence": "high"}, GUEST),
        ({"speaker": GUEST_NAME.upper(), "confidence": "medium"}, GUEST),
        ({"speaker": "the narrator", "confidence": "high"}, HOST),  # unknown -> host
        ({"who": GUEST}, HOST),  # wrong shape -> host
        ("not json at all", HOST),
    ],
)
async def test_answers_map_to_a_present_character(open_engine, answer, expected):
    fake = FakeLLM(routes={"addressee": answer})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    cast = await load_cast(engine.db, chat.chat_id)
    chosen = await choose_addressee(fake, cast, [], "Hello?")
    assert chosen.character_id == expected
    assert fake.purposes == ["opening_time", "addressee"] and fake.calls[-1].role == "classifier"


async def test_low_confidence_keeps_the_last_speaker_and_model_errors_fall_back(open_engine):
    fake = FakeLLM(routes={"narrate": "Aye.", "addressee": {"speaker": GUEST, "confidence": "high"}})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(engine.post_turn(chat.chat_id, "Captain?", "$1"))
    cast = await load_cast(engine.db, chat.chat_id)
    dialogue = await recent_dialogue(engine.db, chat.chat_id, limit=6)

    fake.set_route("addressee", {"speaker": HOST, "confidence": "low"})
    assert (await choose_addressee(fake, cast, dialogue, "Hm.")).character_id == GUEST

    fake.set_error("addressee", LLMTimeoutError("slow"))
    assert (await choose_addressee(fake, cast, dialogue, "Hm.")).character_id == HOST


async def test_one_character_needs_no_request(open_engine):
    fake = FakeLLM()
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    cast = await load_cast(engine.db, chat.chat_id)
    assert (await choose_addressee(fake, cast, [], "Hi")).character_id == HOST
    assert fake.purposes == ["opening_time"]  # when the story begins, read at its creation; no routing
