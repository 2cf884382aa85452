"""The turn pipeline against a real HTTP model server (FakeOpenAIServer + OpenAICompatibleClient).

Happy-path streaming, and every model failure a turn can meet: each failure
either recovers inside the client (429 / 500 then success) or surfaces as a typed
`LLMError` after the player's turn is recorded, with no reply recorded, so that a
retry (regenerate, or posting the same source again) makes exactly one reply.  Each story is
given its start, so the server sees only the requests of the turns.
"""

from __future__ import annotations

import asyncio

import pytest

from core.engine import STORY_START
from core.llm import LLMStreamError, LLMTimeoutError
from core.state import turns as turn_state
from tests.core.pipeline.conftest import GUEST, HOST, HOST_NAME, collect, http_client
from tests.support.fake_openai import Reply

REPLY = "*Wren sets the kettle down.* Welcome back. The lamps are lit."


async def _turns(engine, chat_id):
    return [(t.role, t.speaker, t.text, t.source_id, t.truncated)
            for t in await turn_state.recent_turns(engine.db, chat_id, 50)]


async def test_streamed_reply_and_recorded_turns(fake_openai, open_engine):
    fake_openai.add_rule(Reply(text=REPLY, chunk_size=6), purpose="narrate")
    engine = await open_engine(http_client(fake_openai))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=STORY_START)
    greeting = await engine.greeting(chat.chat_id)

    updates = await collect(engine.post_turn(chat.chat_id, "Hello, Wren.", "$ev1"))

    partial, final = updates[:-1], updates[-1]
    assert len(partial) >= 5 and all(not u.done for u in partial)
    assert all(b.text.startswith(a.text) and len(b.text) > len(a.text) for a, b in zip(partial, partial[1:], strict=False))
    assert final.done and not final.truncated and final.text == REPLY
    assert (final.speaker_name, final.speaker_id) == (HOST_NAME, HOST) and final.turn_id is not None
    assert await _turns(engine, chat.chat_id) == [
        ("assistant", HOST, greeting.text, "greeting", False),
        ("user", "@p:hs", "Hello, Wren.", "$ev1", False),
        ("assistant", HOST, REPLY, "$ev1#reply", False),
    ]
    [request] = fake_openai.completion_requests
    assert request.purpose == "narrate" and request.is_stream and request.model == "narrator-1"
    assert "Character: Wren Halloway" in request.system_prompt
    assert request.last_user_message.startswith("Hello, Wren.\n\n[Story notes for Wren Halloway")


async def test_timeout_raises_after_the_user_turn_and_regenerate_retries(fake_openai, open_engine):
    fake_openai.add_rule(Reply(text=REPLY, hang=True, fail_times=1), purpose="narrate")
    engine = await open_engine(http_client(fake_openai, timeout_s=0.3))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=STORY_START)

    with pytest.raises(LLMTimeoutError):
        await collect(engine.post_turn(chat.chat_id, "Are you there?", "$ev1"))
    assert await _turns(engine, chat.chat_id) == [("user", "@p:hs", "Are you there?", "$ev1", False)]

    updates = await collect(engine.regenerate(chat.chat_id))
    assert updates[-1].done and updates[-1].text == REPLY
    assert await _turns(engine, chat.chat_id) == [
        ("user", "@p:hs", "Are you there?", "$ev1", False),
        ("assistant", HOST, REPLY, "$ev1#reply", False),
    ]
    # The reply is tied to the player's source: posting it again does not generate twice.
    again = await collect(engine.post_turn(chat.chat_id, "Are you there?", "$ev1"))
    assert [(u.text, u.done) for u in again] == [(REPLY, True)]
    assert len(fake_openai.completion_requests) == 2


async def test_429_with_retry_after_then_success(fake_openai, open_engine):
    fake_openai.add_rule(Reply(text=REPLY, status=429, retry_after=1, fail_times=1), purpose="narrate")
    engine = await open_engine(http_client(fake_openai))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=STORY_START)

    updates = await collect(engine.post_turn(chat.chat_id, "Hi", "$ev1"))

    assert updates[-1].done and updates[-1].text == REPLY
    first, second = fake_openai.completion_requests
    assert second.received_monotonic - first.received_monotonic >= 0.95
    assert [t[0] for t in await _turns(engine, chat.chat_id)] == ["user", "assistant"]


async def test_500_then_success(fake_openai, open_engine):
    fake_openai.add_rule(Reply(text=REPLY, status=500, fail_times=2), purpose="narrate")
    engine = await open_engine(http_client(fake_openai))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=STORY_START)

    updates = await collect(engine.post_turn(chat.chat_id, "Hi", "$ev1"))

    assert updates[-1].text == REPLY and len(fake_openai.completion_requests) == 3
    assert [t[0] for t in await _turns(engine, chat.chat_id)] == ["user", "assistant"]


@pytest.mark.parametrize(
    "failure",
    [dict(stream_error={"message": "model overloaded"}), dict(malformed_line=True)],
    ids=["error-object-mid-stream", "malformed-sse"],
)
async def test_stream_failure_mid_reply_raises_and_records_no_reply(fake_openai, open_engine, failure):
    fake_openai.add_rule(
        Reply(text=REPLY, chunk_size=4, fail_after_chunks=3, fail_times=1, **failure), purpose="narrate"
    )
    engine = await open_engine(http_client(fake_openai))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=STORY_START)

    seen = []
    with pytest.raises(LLMStreamError):
        async for update in engine.post_turn(chat.chat_id, "Tell me a story", "$ev1"):
            seen.append(update)
    assert seen and not any(u.done for u in seen) and REPLY.startswith(seen[-1].text)
    assert await _turns(engine, chat.chat_id) == [("user", "@p:hs", "Tell me a story", "$ev1", False)]

    # Sending the same line again (the adapter's retry) generates the one reply.
    updates = await collect(engine.post_turn(chat.chat_id, "Tell me a story", "$ev1"))
    assert updates[-1].text == REPLY
    assert [t[0] for t in await _turns(engine, chat.chat_id)] == ["user", "assistant"]


async def test_invalid_classifier_json_falls_back_to_the_host(fake_openai, open_engine):
    fake_openai.add_rule(Reply(text="Probably the captain, I think."), purpose="addressee")
    fake_openai.add_rule(Reply(text=REPLY), purpose="narrate")
    engine = await open_engine(http_client(fake_openai))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST, starts_at=STORY_START)

    updates = await collect(engine.post_turn(chat.chat_id, "Is the Captain aboard yet?", "$ev1"))  # a mention: routed

    assert updates[-1].speaker_id == HOST and updates[-1].text == REPLY
    addressee, narrate = fake_openai.completion_requests
    assert (addressee.purpose, addressee.model, addressee.is_stream) == ("addressee", "classifier-1", False)
    assert narrate.purpose == "narrate" and "Character: Wren Halloway" in narrate.system_prompt


async def test_cancel_closes_the_http_stream_and_keeps_a_truncated_turn(fake_openai, open_engine):
    long_text = "The tide comes in slowly over the black rocks. " * 20
    fake_openai.add_rule(Reply(text=long_text, chunk_size=5, chunk_delay_s=0.03), purpose="narrate")
    engine = await open_engine(http_client(fake_openai))
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=STORY_START)

    updates = []
    async for update in engine.post_turn(chat.chat_id, "Go on", "$ev1"):
        updates.append(update)
        if len(updates) == 3:
            assert await engine.cancel(chat.chat_id) is True

    final = updates[-1]
    assert final.done and final.truncated and 0 < len(final.text) < len(long_text)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert fake_openai.completion_requests[0].wait_disconnected(2.0)
    reply = await turn_state.require_turn(engine.db, int(final.turn_id))
    assert reply.truncated and reply.text == final.text
