"""Status, context and memory search as the adapters read them; typed errors for bad input."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.engine import ChatStatus, ContextReport
from core.errors import ChatNotFoundError
from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from tests.core.story.conftest import (
    GUEST,
    GUEST_NAME,
    HOST,
    HOST_NAME,
    collect,
    settle,
)


async def test_status_context_and_search(open_engine):
    fake = FakeLLM(routes={"addressee": AddresseeDecision(speaker=HOST, confidence="high"),
                           "narrate": "The lighthouse lamp is lit.", "lifecycle": {}})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST, title="Harbour")
    await engine.plan_event(chat.chat_id, "Storm", datetime(2026, 4, 2, 9, 0))
    await collect(engine.post_turn(chat.chat_id, "Is the lamp lit?", "$1"))
    await settle(engine, chat.chat_id)

    status = await engine.status(chat.chat_id)
    assert status == ChatStatus(
        title="Harbour", host_name=HOST_NAME, guest_name=GUEST_NAME, clock=datetime(2026, 4, 1, 9, 0),
        scene_open=True, turns=2, memories=1, open_threads=0, upcoming_events=1,
        persona_name="p", persona_description="", parse_failures=status.parse_failures,
        players=("p",), characters=(HOST_NAME, GUEST_NAME),
    )
    report = await engine.context(chat.chat_id)
    assert isinstance(report, ContextReport) and report.speaker_name == HOST_NAME
    sections = {s.name: s for s in report.sections}
    assert {"card", "memories", "dialogue"} <= set(sections)
    assert sections["dialogue"].items == 2 and sections["card"].tokens > 0
    assert sum(s.tokens for s in report.sections) <= report.budget_tokens

    [hit] = await engine.search_memory(chat.chat_id, "you", "lighthouse")
    assert "lighthouse" in hit.text and hit.significance == 2 and hit.story_time == status.clock
    assert await engine.search_memory(chat.chat_id, GUEST_NAME.lower(), "lighthouse")


async def test_unknown_chats_raise_typed_errors(open_engine):
    engine = await open_engine(FakeLLM())
    for call in (engine.status("nope"), engine.context("nope"), engine.chat_clock("nope"),
                 engine.close_scene("nope"), engine.list_threads("nope"), engine.list_world_events("nope"),
                 engine.plan_event("nope", "x", datetime(2030, 1, 1)), engine.search_memory("nope", "you", "x")):
        with pytest.raises(ChatNotFoundError):
            await call
    with pytest.raises(ChatNotFoundError):
        await collect(engine.meanwhile("nope", HOST, GUEST))
