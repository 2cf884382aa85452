"""The engine owns "was this line answered" and "which reply is the latest": an adapter hands
lines over, answers them, says when the answer was shown, and asks what a regenerate would do."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from core.errors import InvalidInputError, NothingToRegenerateError
from core.llm import FakeLLM
from core.llm.base import LLMTimeoutError
from core.state import turns as turn_state
from tests.core.pipeline.conftest import HOST, collect


async def test_a_line_is_owed_from_when_it_is_received_until_its_answer_was_shown(open_engine):
    engine = await open_engine(FakeLLM(routes={"narrate": "The lamp hums."}))
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    assert await engine.receive_line(chat.chat_id, "Hello?", "$1") is True
    assert await engine.receive_line(chat.chat_id, "Hello?", "$1") is False  # a replayed event
    assert [(o.chat_id, o.source_id, o.text) for o in await engine.owed_lines()] == [(chat.chat_id, "$1", "Hello?")]
    await collect(engine.post_turn(chat.chat_id, "Hello?", "$1"))
    assert len(await engine.owed_lines()) == 1  # the reply exists, but nobody has seen it yet
    await engine.line_answered(chat.chat_id, "$1")
    await engine.line_answered(chat.chat_id, "$1")  # said twice (a redelivery): still one answer
    assert await engine.owed_lines() == []
    assert await engine.receive_line(chat.chat_id, "Hello?", "$1") is False


async def test_a_line_refused_as_it_stands_is_never_owed(open_engine):
    engine = await open_engine(FakeLLM())
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    with pytest.raises(InvalidInputError):
        await engine.receive_line(chat.chat_id, "word " * 2_000, "$long")
    assert await engine.owed_lines() == []


async def test_a_line_answered_before_lines_were_recorded_is_known(open_engine):
    engine = await open_engine(FakeLLM(routes={"narrate": "Yes."}))
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Old line", "$old"))  # never received: an older adapter
    assert await engine.receive_line(chat.chat_id, "Old line", "$old") is False


async def test_receiving_does_not_wait_for_the_reply_being_written(open_engine):
    fake = FakeLLM(routes={"narrate": "A slow answer."}, delays={"narrate": 2.0})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    writing = asyncio.create_task(collect(engine.post_turn(chat.chat_id, "Tell me everything.", "$1")))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert await engine.receive_line(chat.chat_id, "And then?", "$2") is True
    assert time.monotonic() - started < 0.5
    assert await engine.cancel(chat.chat_id)
    await writing


async def test_the_regenerate_target_is_the_engines_latest_reply(open_engine):
    fake = FakeLLM(routes={"narrate": "The lamp hums.", "skip": "Two hours go by."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    greeting = await engine.greeting(chat.chat_id)
    target = await engine.regenerate_target(chat.chat_id)
    assert (target.replaces_turn_id, target.speaker_id) == (greeting.turn_id, HOST)

    reply = (await collect(engine.post_turn(chat.chat_id, "Hello.", "$1")))[-1]
    target = await engine.regenerate_target(chat.chat_id)
    assert (target.replaces_turn_id, target.speaker_id, target.line_source_id) == (reply.turn_id, HOST, None)
    swipe = (await collect(engine.regenerate(chat.chat_id)))[-1]
    assert (await engine.regenerate_target(chat.chat_id)).replaces_turn_id == swipe.turn_id != reply.turn_id

    fake.set_error("narrate", LLMTimeoutError("slow"))
    with pytest.raises(LLMTimeoutError):
        await collect(engine.post_turn(chat.chat_id, "Are you there?", "$2"))
    target = await engine.regenerate_target(chat.chat_id)
    assert (target.replaces_turn_id, target.line_source_id) == (None, "$2")  # the line still needs its reply

    fake.set_route("narrate", "Here.")
    fake.set_error("narrate", None)
    await collect(engine.regenerate(chat.chat_id))
    answered = await turn_state.last_turn(engine.db, chat.chat_id)
    assert answered is not None and answered.role == "assistant" and answered.source_id == "$2#reply"

    await engine.skip(chat.chat_id, timedelta(hours=2))
    with pytest.raises(NothingToRegenerateError, match="time skip"):
        await engine.regenerate_target(chat.chat_id)
