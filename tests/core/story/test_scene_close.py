"""Scene close: per-POV summaries with Key quotes, idempotent re-close, scoped thread detection."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from core.llm import FakeLLM
from core.llm.base import LLMError
from core.services.addressee import AddresseeDecision
from core.services.scenes import (
    KEY_QUOTES_HEADER,
    QUOTE_CHARS,
    apply_scene_close_summary,
)
from core.state import memory as memory_state
from core.state import threads as thread_state
from core.state import world
from tests.core.story.conftest import (
    GUEST,
    GUEST_NAME,
    HOST,
    HOST_NAME,
    collect,
    open_scene_id,
)

LONG_REPLY = "The lighthouse keeper's log says the lamp went dark at midnight. " * 8  # > 200 characters


def pov_summary(messages) -> str:
    system = messages[0]["content"]
    who = HOST_NAME if f"You are {HOST_NAME}" in system else GUEST_NAME
    return f"Summary by {who}."


def routes(**extra):
    base = {
        "addressee": AddresseeDecision(speaker=HOST, confidence="high"),
        "narrate": LONG_REPLY,
        "scene_close": pov_summary,
        "threads": {},
    }
    base.update(extra)
    return base


async def live_summaries(engine, chat_id, scene_id):
    rows = await engine.db.reader.fetch_all(
        "SELECT memory_id FROM memories WHERE scene_id = ? AND kind = 'summary' AND retracted = 0", (scene_id,)
    )
    return [await memory_state.require_memory(engine.db, r[0]) for r in rows]


async def test_each_present_character_gets_its_own_summary_with_key_quotes(open_engine):
    fake = FakeLLM(routes=routes())
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(engine.post_turn(chat.chat_id, "Tell me about the lamp.", "$1"))
    scene_id = await open_scene_id(engine, chat.chat_id)

    result = await engine.close_scene(chat.chat_id)

    assert result is not None and result.scene_id == scene_id
    assert set(result.summaries) == {HOST_NAME, GUEST_NAME}
    calls = fake.calls_for("scene_close")
    assert len(calls) == 2 and all(c.role == "narrative" for c in calls)
    for memory in await live_summaries(engine, chat.chat_id, scene_id):
        assert memory.kind == "summary" and memory.pov in (HOST, GUEST)
        assert set(memory.witnesses) == {memory.pov, "@p:hs"}
        assert memory.text.startswith(f"Summary by {HOST_NAME if memory.pov == HOST else GUEST_NAME}.")
        quote = memory.text.split(KEY_QUOTES_HEADER, 1)[1]
        assert " ".join(LONG_REPLY.split())[:QUOTE_CHARS] in quote
        assert " ".join(LONG_REPLY.split())[:QUOTE_CHARS + 1] not in quote
    # Each character recalls its own summary only.
    own = await memory_state.recent_memories_for(engine.db, chat.chat_id, GUEST, 50, kind="summary")
    assert [m.pov for m in own] == [GUEST]
    assert await engine.close_scene(chat.chat_id) is None  # nothing open any more


async def test_reclosing_never_doubles_key_quotes(open_engine):
    # The model echoes what it is given, Key quotes included: the suffix must still appear once.
    def echo(messages):
        return "Again. " + KEY_QUOTES_HEADER + "\n- someone: \"old quote\""

    fake = FakeLLM(routes=routes(scene_close=echo))
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    scene_id = await open_scene_id(engine, chat.chat_id)
    await engine.close_scene(chat.chat_id)
    await apply_scene_close_summary(engine.db, engine.llm, chat.chat_id, scene_id)
    await world.reopen_scene(engine.db, chat.chat_id, scene_id)
    await engine.close_scene(chat.chat_id)

    summaries = await live_summaries(engine, chat.chat_id, scene_id)
    assert len(summaries) == 1
    assert summaries[0].text.count(KEY_QUOTES_HEADER) == 1 and "old quote" not in summaries[0].text


async def test_thread_detection_sees_only_the_closing_scene(open_engine):
    lines = iter(["First scene: the ALPHA signal.", "Second scene: the BETA signal."])
    fake = FakeLLM(routes=routes(narrate=lambda _m: next(lines)))
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "What was that?", "$1"))
    await engine.close_scene(chat.chat_id)
    await collect(engine.post_turn(chat.chat_id, "And now?", "$2"))
    await engine.close_scene(chat.chat_id)

    first, second = fake.calls_for("threads")
    assert first.role == "classifier" and "ALPHA" in first.last_user_message
    assert "BETA" in second.last_user_message and "ALPHA" not in second.last_user_message


async def test_thread_lifecycle_uses_the_chat_clock(open_engine):
    answers = iter([
        {"open": [{"title": "Who darkened the lamp?", "summary": "The lamp went dark."}]},
        {"close": [{"thread_id": 0, "resolution": "placeholder"}]},
    ])

    def detector(messages):
        answer = next(answers)
        if "close" in answer:
            thread_id = int(messages[-1]["content"].split("- id ", 1)[1].split(":", 1)[0])
            answer = {"close": [{"thread_id": thread_id, "resolution": "The keeper confessed."}]}
        return answer

    fake = FakeLLM(routes=routes(threads=detector, skip="Hours pass."))
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    await engine.close_scene(chat.chat_id)
    opened_clock = await engine.chat_clock(chat.chat_id)
    await engine.skip(chat.chat_id, timedelta(hours=30))
    await collect(engine.post_turn(chat.chat_id, "Hello again.", "$2"))
    await engine.close_scene(chat.chat_id)

    [thread] = await engine.list_threads(chat.chat_id)
    assert thread.status == "closed" and thread.opened_at == opened_clock
    assert thread.closed_at == await engine.chat_clock(chat.chat_id) == opened_clock + timedelta(hours=30)
    stored = await thread_state.require_thread(engine.db, thread.thread_id)
    assert stored.resolution == "The keeper confessed."


async def test_a_failing_thread_detector_is_logged_with_its_exception(open_engine, caplog):
    fake = FakeLLM(routes=routes(), errors={"threads": LLMError("model unreachable", purpose="threads")})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    with caplog.at_level(logging.ERROR):
        result = await engine.close_scene(chat.chat_id)
    assert result is not None and set(result.summaries) == {HOST_NAME}
    failures = [r for r in caplog.records if "thread detection failed" in r.getMessage()]
    assert failures and failures[0].exc_info and isinstance(failures[0].exc_info[1], LLMError)


async def test_a_summary_failure_propagates_and_the_summary_stays_owed(open_engine):
    fake = FakeLLM(routes=routes(), errors={"scene_close": LLMError("timeout", purpose="scene_close")})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    scene_id = await open_scene_id(engine, chat.chat_id)
    with pytest.raises(LLMError):
        await engine.close_scene(chat.chat_id)
    assert await open_scene_id(engine, chat.chat_id) is None  # closed, as the player asked
    assert await live_summaries(engine, chat.chat_id, scene_id) == []
    fake.set_error("scene_close", None)
    assert (await engine.close_scene(chat.chat_id)).scene_id == scene_id  # the owed summary, written now
    assert len(await live_summaries(engine, chat.chat_id, scene_id)) == 1


async def test_a_thread_the_detector_opens_again_is_not_opened_twice(open_engine) -> None:
    fake = FakeLLM({"narrate": "Aye.", "scene_close": "I remember.",
                    "threads": {"open": [{"title": "The drifting buoy", "summary": "It lies about the reef."}]}})
    engine = await open_engine(fake)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    for n in range(3):
        await collect(engine.post_turn(chat, f"The buoy again, {n}.", f"${n}"))
        await engine.close_scene(chat)
    assert [t.title for t in await thread_state.list_threads(engine.db, chat)] == ["The drifting buoy"]
