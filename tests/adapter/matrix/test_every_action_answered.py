"""Every player action ends in something the player sees: the answer, or a notice saying what went
wrong and what to do. Never only a line in the log.

The engine is the real one (in process, on a temporary database, a fake model routed by
purpose); the dispatcher, the handlers and the cache store are the real ones; only the sender
records instead of sending. The same is shown end to end against Synapse in
tests/reliability/test_random_actions.py.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from nio import ReactionEvent, RoomMessageFile, RoomMessageText

from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.failures import explain
from adapter.matrix.room_types import RoomType
from adapter.matrix.spaces import create_story_room
from adapter.matrix.store import RoomMeta, StateStore, get_room_meta, raise_counter_to, set_room_meta
from core.engine import Engine
from core.errors import InvalidInputError, NothingToRegenerateError, RpbotError
from core.llm import FakeLLM
from core.llm.base import LLMError, LLMTimeoutError
from tests.adapter.matrix.stand_ins import Ctx

ALICE = "@alice:localhost"
STORY, LOBBY = "!story", "!lobby"
_ids = itertools.count(1)


def event_id() -> str:
    return f"$e{next(_ids)}"


def text_event(body: str) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {"type": "m.room.message", "sender": ALICE, "event_id": event_id(), "origin_server_ts": 1,
         "content": {"msgtype": "m.text", "body": body}}
    )


def reaction(target: str, key: str) -> ReactionEvent:
    return ReactionEvent.from_dict(
        {"type": "m.reaction", "sender": ALICE, "event_id": event_id(), "origin_server_ts": 1,
         "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}}
    )


def upload(name: str) -> RoomMessageFile:
    return RoomMessageFile.from_dict(
        {"type": "m.room.message", "sender": ALICE, "event_id": event_id(), "origin_server_ts": 1,
         "content": {"msgtype": "m.file", "body": name, "url": "mxc://localhost/abc"}}
    )


@pytest.fixture
async def world(tmp_path: Path):
    fake = FakeLLM(routes={"narrate": "The lamp hums.", "skip": "Two hours go by."})
    engine = await Engine.open(tmp_path / "engine.sqlite3", fake)
    chat = await engine.create_chat(owner=ALICE, host="wren-halloway")
    store = await StateStore.open(tmp_path / "adapter.sqlite3")
    await set_room_meta(store, RoomMeta(STORY, RoomType.STORY, ALICE, "!space", chat.chat_id, "mx-1"))
    await set_room_meta(store, RoomMeta(LOBBY, RoomType.LOBBY, ALICE, "!space"))
    ctx = Ctx(store, engine)
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    yield fake, ctx, dispatcher
    await dispatcher.idle()
    await engine.close()
    await store.close()


async def act(dispatcher: Dispatcher, ctx: Ctx, room_id: str, event: Any) -> list[str]:
    """Dispatch one player action; what the bot sent to the room because of it."""
    before = len(ctx.sender.bodies(room_id))
    await dispatcher.dispatch_event(room_id, event)
    await dispatcher.idle()
    return ctx.sender.bodies(room_id)[before:]


def message_showing(ctx: Ctx, body: str) -> str:
    """The event id the stand-in sender gave the message first shown with `body`."""
    index = next(i for i, e in enumerate(ctx.sender.sent) if getattr(e, "content", {}).get("body") == body)
    return f"$out{index + 1}"


async def test_regenerate_after_a_skip_says_there_is_nothing_to_redo(world) -> None:
    _fake, ctx, dispatcher = world
    assert await act(dispatcher, ctx, STORY, text_event("Hello, Wren.")) == ["The lamp hums."]
    assert any("Two hours go by." in b for b in await act(dispatcher, ctx, STORY, text_event("!skip 2h")))

    answer = await act(dispatcher, ctx, STORY, text_event("!regen"))
    assert len(answer) == 1 and "time skip" in answer[0] and "not found" not in answer[0]

    newest = message_showing(ctx, "The lamp hums.")
    answer = await act(dispatcher, ctx, STORY, reaction(newest, "🔄"))
    assert len(answer) == 1 and "time skip" in answer[0]


async def test_a_line_that_hits_a_fault_of_the_bot_gets_a_notice(world) -> None:
    fake, ctx, dispatcher = world

    def broken(_messages):
        raise RuntimeError("a bug")

    fake.routes["narrate"] = broken
    answer = await act(dispatcher, ctx, STORY, text_event("Hello?"))
    assert len(answer) == 1 and "went wrong on my side" in answer[0] and "`!regen`" in answer[0]


async def test_a_command_that_hits_a_fault_of_the_bot_gets_a_notice(world, monkeypatch) -> None:
    _fake, ctx, dispatcher = world

    async def broken(chat_id: str):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ctx.engine, "status", broken)
    answer = await act(dispatcher, ctx, STORY, text_event("!status"))
    assert len(answer) == 1 and "went wrong on my side" in answer[0]


async def test_reactions_get_an_answer_when_they_cannot_act(world) -> None:
    _fake, ctx, dispatcher = world
    await act(dispatcher, ctx, STORY, text_event("Hello, Wren."))
    await act(dispatcher, ctx, STORY, text_event("And the storm?"))
    answer = await act(dispatcher, ctx, STORY, reaction("$not-the-newest", "🔄"))
    assert len(answer) == 1 and "newest reply" in answer[0]
    answer = await act(dispatcher, ctx, STORY, reaction("$any", "⏹"))
    assert len(answer) == 1 and "Nothing is being written" in answer[0]
    answer = await act(dispatcher, ctx, LOBBY, reaction("$any", "🔄"))
    assert len(answer) == 1 and "story room" in answer[0]


async def test_lines_and_uploads_where_they_mean_nothing_are_answered(world) -> None:
    _fake, ctx, dispatcher = world
    answer = await act(dispatcher, ctx, LOBBY, text_event("hello there"))
    assert len(answer) == 1 and "`!help`" in answer[0]
    answer = await act(dispatcher, ctx, LOBBY, upload("wren.png"))
    assert len(answer) == 1 and "`!import`" in answer[0]
    answer = await act(dispatcher, ctx, STORY, upload("wren.png"))
    assert len(answer) == 1 and "Lobby" in answer[0]


def test_model_errors_belong_to_the_engine_error_tree_and_each_reads_as_advice() -> None:
    assert issubclass(LLMError, RpbotError)
    assert "in time" in explain(LLMTimeoutError("slow"), retry="Send `!regen`.")
    assert explain(LLMTimeoutError("slow"), retry="Send `!regen`.").endswith("Send `!regen`.")
    refused = InvalidInputError("That line is too long.")
    assert explain(refused, retry="Send `!regen`.") == "That line is too long."
    assert "not found" not in explain(NothingToRegenerateError("chat-1", "There is no reply to redo yet."))
    assert "went wrong on my side (KeyError)" in explain(KeyError("x"))


async def test_a_line_over_the_limit_is_answered_with_the_limit_and_not_owed(world) -> None:
    _fake, ctx, dispatcher = world
    answer = await act(dispatcher, ctx, STORY, text_event("word " * 2_000))
    assert len(answer) == 1 and "8,000" in answer[0]
    assert await ctx.engine.owed_lines() == []  # refused as it stands: never owed
    with pytest.raises(NothingToRegenerateError):  # and `!regen` will not send it again
        await ctx.engine.regenerate_target((await get_room_meta(ctx.store, STORY)).chat_id)


async def test_a_reaction_on_the_greeting_redoes_it_until_a_newer_reply_exists(world) -> None:
    fake, ctx, dispatcher = world
    fake.routes["narrate"] = "Oh. Hello again, stranger."
    await raise_counter_to(ctx.store, "platform_chat_id", 1)  # the fixture's room holds mx-1
    room_id = await create_story_room(ctx, ALICE, "!space", host="wren-halloway")  # type: ignore[arg-type]
    greeting = next(e for e in ctx.sender.sent if getattr(e, "room_id", None) == room_id and hasattr(e, "content"))
    greeting_id = f"$out{ctx.sender.sent.index(greeting) + 1}"

    answer = await act(dispatcher, ctx, room_id, reaction(greeting_id, "🔄"))
    assert answer == ["Oh. Hello again, stranger."]
    redone = [e for e in ctx.sender.sent if getattr(e, "room_id", None) == room_id and hasattr(e, "content")][-1]
    assert redone.content["m.relates_to"] == {"rel_type": "m.replace", "event_id": greeting_id}  # in place

    fake.routes["narrate"] = "The lamp hums."
    await act(dispatcher, ctx, room_id, text_event("Hello, Wren."))
    answer = await act(dispatcher, ctx, room_id, reaction(greeting_id, "🔄"))
    assert len(answer) == 1 and "newest reply" in answer[0]
