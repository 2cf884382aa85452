"""Time skips and jumps, natural-language intent, and the call plan before narration (latency rule)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.errors import ChatNotFoundError, InvalidTimeError, TurnNotFoundError
from core.llm import FakeLLM
from core.llm.base import LLMTimeoutError
from core.services.addressee import AddresseeDecision, may_carry_intent
from core.state import world
from tests.core.story.conftest import (
    CLASSIFIERS,
    GUEST,
    HOST,
    collect,
    open_scene_id,
    settle,
)

START = datetime(2026, 4, 1, 9, 0)


def before_first_narration(fake: FakeLLM) -> list[str]:
    """The calls of a turn before its first narration (when the story begins is read at its creation)."""
    purposes = fake.purposes[1:] if fake.purposes[:1] == ["opening_time"] else fake.purposes
    first = next(i for i, p in enumerate(purposes) if p in ("narrate", "skip"))
    return purposes[:first]


async def test_one_character_plain_text_makes_no_classifier_call(open_engine):
    fake = FakeLLM(routes={"narrate": "Wren nods."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    updates = await collect(engine.post_turn(chat.chat_id, "Could you pass the salt?", "$1"))
    assert fake.purposes[:2] == ["opening_time", "narrate"] and not set(fake.purposes) & CLASSIFIERS
    assert updates[-1].kind == "reply" and updates[-1].done


async def test_guest_chat_makes_exactly_one_classifier_call_before_narration(open_engine):
    fake = FakeLLM(routes={"addressee": AddresseeDecision(speaker=GUEST, confidence="high"), "narrate": "Aye."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    updates = await collect(engine.post_turn(chat.chat_id, "Is the Captain coming along?", "$1"))  # a mention
    assert before_first_narration(fake) == ["addressee"] and updates[-1].speaker_id == GUEST


async def test_the_speaker_is_chosen_without_a_model_call_when_the_line_makes_it_plain(open_engine):
    fake = FakeLLM(routes={"narrate": "Aye."})  # no addressee route: a routing call would fail the test
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    said = [await collect(engine.post_turn(chat.chat_id, line, f"$l{n}", replying_to=replying_to))
            for n, (line, replying_to) in enumerate([
                ("Good to see you.", None),              # nobody spoke yet: the host
                ("Odile, is the ship ready?", None),     # names one: her
                ("And the crew?", None),                 # goes on with the last speaker
                ("Hello Wren, how is the lamp?", None),  # names the other
                ("What do you make of that?", GUEST),    # a Matrix reply to Odile's message
            ])]
    assert [s[-1].speaker_id for s in said] == [HOST, GUEST, GUEST, HOST, GUEST]
    assert fake.purposes == ["opening_time"] + ["narrate"] * 5


async def test_sleeping_till_morning_is_answered_first_then_the_skip_follows(open_engine):
    fake = FakeLLM(routes={
        "addressee": {"speaker": HOST, "time": "jump", "amount": "tomorrow 7am"},
        "narrate": "Sleep well.",
        "skip": "The night passes quietly.",
    })
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    updates = await collect(engine.post_turn(chat.chat_id, "We sleep till morning.", "$1"))

    assert before_first_narration(fake) == ["addressee"]
    assert fake.calls_for("addressee")[0].role == "classifier"
    done = [(u.kind, u.text) for u in updates if u.done]
    assert done == [("reply", "Sleep well."), ("narration", "The night passes quietly.")]
    assert await engine.chat_clock(chat.chat_id) == datetime(2026, 4, 2, 7, 0)
    # Posting the same line again says the same again; nothing runs twice.
    again = await collect(engine.post_turn(chat.chat_id, "We sleep till morning.", "$1"))
    assert [(u.kind, u.text, u.turn_id) for u in again] == [(u.kind, u.text, u.turn_id) for u in updates if u.done]
    assert len(fake.calls_for("skip")) == 1 and len(fake.calls_for("narrate")) == 1
    # A narration is not a reply: there is nothing to regenerate (a typed error, nothing changes).
    with pytest.raises(TurnNotFoundError):
        await collect(engine.regenerate(chat.chat_id))


async def test_a_skip_that_also_closes_the_scene_closes_it_first(open_engine):
    fake = FakeLLM(routes={
        "narrate": "Goodnight.",
        "addressee": {"speaker": HOST, "time": "skip", "amount": "8h", "close_scene": True},
        "skip": "Eight hours later, dawn.",
        "scene_close": "I said goodnight to the player.",
        "threads": {},
    })
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$0"))
    scene_id = await open_scene_id(engine, chat.chat_id)
    updates = await collect(engine.post_turn(chat.chat_id, "Let's end the scene and sleep for 8 hours.", "$1"))

    assert [u.kind for u in updates if u.done] == ["reply", "scene", "narration"]  # the answer first
    assert await open_scene_id(engine, chat.chat_id) is None
    kinds = [r[0] for r in await engine.db.reader.fetch_all(
        "SELECT kind FROM events WHERE kind IN ('scene_closed', 'clock_set') ORDER BY seq")]
    assert kinds == ["scene_closed", "clock_set"]
    assert (await world.require_scene(engine.db, scene_id)).closed_at == START  # closed before the clock moved
    assert await engine.chat_clock(chat.chat_id) == START + timedelta(hours=8)
    await settle(engine, chat.chat_id)
    assert len(fake.calls_for("scene_close")) == 1  # the summary ran after the reply
    # The next turn opens a new scene at the new time.
    fake.set_route("addressee", {"speaker": HOST})
    await collect(engine.post_turn(chat.chat_id, "Good morning.", "$2"))
    new_scene = await world.require_scene(engine.db, await open_scene_id(engine, chat.chat_id))
    assert new_scene.scene_id != scene_id and new_scene.started_at == START + timedelta(hours=8)


async def test_skip_and_jump_commands(open_engine):
    fake = FakeLLM(routes={"skip": "Time passes."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    result = await engine.skip(chat.chat_id, timedelta(hours=2))
    assert result.narration == "Time passes." and result.clock == START + timedelta(hours=2)
    assert not result.scene_closed and await engine.chat_clock(chat.chat_id) == result.clock
    result = await engine.jump(chat.chat_id, datetime(2026, 4, 3, 9, 0))
    assert result.clock == datetime(2026, 4, 3, 9, 0)
    with pytest.raises(InvalidTimeError):
        await engine.jump(chat.chat_id, datetime(2026, 4, 1, 9, 0))
    with pytest.raises(InvalidTimeError):
        await engine.skip(chat.chat_id, timedelta(0))
    with pytest.raises(ChatNotFoundError):
        await engine.skip("no-such-chat", timedelta(hours=1))
    assert fake.purposes == ["opening_time", "skip", "skip"]


async def test_a_narration_timeout_propagates_and_changes_nothing(open_engine):
    fake = FakeLLM(routes={"skip": "never"}, errors={"skip": LLMTimeoutError("slow", purpose="skip")})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    with pytest.raises(LLMTimeoutError):
        await engine.skip(chat.chat_id, timedelta(hours=1))
    assert await engine.chat_clock(chat.chat_id) == START
    fake.set_route("addressee", {"speaker": HOST, "time": "skip", "amount": "1h"})
    fake.set_route("narrate", "See you then.")
    with pytest.raises(LLMTimeoutError):  # after the answer, which stays
        await collect(engine.post_turn(chat.chat_id, "An hour later...", "$1"))
    assert await engine.chat_clock(chat.chat_id) == START
    assert [t.text for t in (await engine.export_story(chat.chat_id)).turns] == ["An hour later...", "See you then."]


async def test_unreadable_intent_falls_back_to_a_plain_reply(open_engine):
    fake = FakeLLM(routes={"addressee": {"speaker": HOST, "time": "skip", "amount": "soonish"}, "narrate": "Hm?"})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    updates = await collect(engine.post_turn(chat.chat_id, "Wait until later.", "$1"))
    assert updates[-1].kind == "reply" and updates[-1].text == "Hm?"
    assert await engine.chat_clock(chat.chat_id) == START


def test_the_local_intent_check():
    for text in ("We sleep till morning.", "Let's skip ahead two hours", "end scene", "See you tomorrow!",
                 "jump to 9am", "An hour later we meet again"):
        assert may_carry_intent(text), text
    for text in ("Could you pass the salt?", "Hello there.", "What a lovely lamp."):
        assert not may_carry_intent(text), text


async def test_a_detected_scene_close_alone_closes_the_scene_and_summarizes_after(open_engine):
    fake = FakeLLM(routes={"narrate": "Farewell.", "addressee": {"speaker": HOST, "close_scene": True},
                           "scene_close": "We said farewell.", "threads": {}})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$0"))
    updates = await collect(engine.post_turn(chat.chat_id, "That's where we end the scene.", "$1"))
    assert [(u.kind, u.text) for u in updates if u.done] == [("reply", "Farewell."), ("scene", "The scene closes.")]
    assert await open_scene_id(engine, chat.chat_id) is None
    await settle(engine, chat.chat_id)
    assert fake.purposes == ["opening_time", "narrate", "addressee", "narrate", "scene_close", "threads"]
    assert "Farewell." in fake.calls_for("scene_close")[0].messages[-1]["content"]  # the answer is in the scene
    assert await engine.close_scene(chat.chat_id) is None
