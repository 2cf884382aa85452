"""`!new ... at <time>: <scenario>` starts a story when and where the player says; `!memory` by time.

The parsing runs against the stand-in engine of test_commands.py; the story it starts, against the
real engine (in process, a fake model) with the real dispatcher and a recording sender.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from nio import RoomMessageText

from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.handlers.commands import StartStory, new_story_parts
from adapter.matrix.handlers.registry import handle_command
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, UserMeta, get_room_meta, set_room_meta, set_user_meta
from core.engine import Engine, MemoryInfo
from core.llm import FakeLLM
from tests.adapter.matrix.stand_ins import Ctx as RealCtx
from tests.adapter.matrix.test_commands import LOBBY, Ctx, StandInEngine, answer

ALICE = "@alice:localhost"


async def decide(text: str) -> list:
    return await handle_command(Ctx(StandInEngine()), LOBBY, text, "$source", ALICE)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "parts"), [
    ("wren", ("wren", None, None)),
    ("wren at dusk", ("wren", "dusk", None)),
    ("wren with odile at 11:40pm: a storm rolls in", ("wren with odile", "11:40pm", "a storm rolls in")),
    ("wren: Both castaways on a rock.", ("wren", None, "Both castaways on a rock.")),
    ("at before dawn", ("", "before dawn", None)),
    ("wren at", ("wren", "", None)),
])
def test_new_splits_cast_time_and_scenario(args: str, parts: tuple) -> None:
    assert new_story_parts(args) == parts


async def test_new_reads_the_start_and_the_scenario() -> None:
    assert await decide("!new wren at dusk") == [
        StartStory("wren", None, "Wren Halloway", datetime(2026, 4, 1, 19, 0), None)]
    assert await decide("!new wren with odile at 11:40pm: A storm rolls in.") == [
        StartStory("wren", "odile", "Wren Halloway and Captain Odile Marchetti", datetime(2026, 4, 1, 23, 40),
                   "A storm rolls in.")]
    assert await decide("!new wren: Both castaways on a rock.") == [
        StartStory("wren", None, "Wren Halloway", None, "Both castaways on a rock.")]
    assert await decide("!new at a winter night") == [
        StartStory("wren", None, "Wren Halloway", datetime(2026, 1, 15, 22, 0), None)]


@pytest.mark.parametrize("text", ["!new wren at whenever-ish", "!new wren at", "!new wren at dusk:"])
async def test_a_bad_start_or_an_empty_scenario_is_explained_and_starts_nothing(text: str) -> None:
    (sent,) = await decide(text)
    body = sent.content["body"]
    assert not isinstance(sent, StartStory) and "Usage: `!new [character] [with character] [at time] [: scenario]`" in body
    if "dusk" not in text:
        assert "`before dawn`" in body and "`11pm`" in body  # examples of a start


class RemembersEngine(StandInEngine):
    async def search_memory(self, chat_id: str, character: str, query: str, limit: int = 5, *, player: str | None = None) -> list:
        self.calls.append(("memory", chat_id, character, query))
        return [MemoryInfo("Tobin asked about the boat.", datetime(2026, 3, 31, 19, 0), 2, "yesterday evening")]


async def test_memory_shows_when_each_memory_was() -> None:
    engine = RemembersEngine()
    body = await answer(engine, "!memory wren yesterday")
    assert engine.calls[-1] == ("memory", "chat-1", "wren", "yesterday")
    assert "1. Yesterday evening: Tobin asked about the boat." in body


def text_event(body: str, event_id: str) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {"type": "m.room.message", "sender": ALICE, "event_id": event_id, "origin_server_ts": 1,
         "content": {"msgtype": "m.text", "body": body}}
    )


async def test_new_in_the_lobby_makes_a_story_that_begins_then_and_there(tmp_path: Path) -> None:
    fake = FakeLLM({"narrate": "The lamp hums."})
    engine = await Engine.open(tmp_path / "engine.sqlite3", fake)
    store = await StateStore.open(tmp_path / "adapter.sqlite3")
    try:
        await set_user_meta(store, UserMeta(ALICE, "!space", "!lobby"))
        await set_room_meta(store, RoomMeta("!lobby", RoomType.LOBBY, ALICE, "!space"))
        ctx = RealCtx(store, engine)
        dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
        await dispatcher.dispatch_event("!lobby", text_event("!new wren at dusk: A lighthouse rock in a gale.", "$new"))
        await dispatcher.idle()
        assert any("is ready in your Space" in body for body in ctx.sender.bodies("!lobby"))
        [chat] = [m for m in [await get_room_meta(store, r) for r in _made_rooms(ctx)] if m and m.room_type == RoomType.STORY]
        assert chat.chat_id is not None
        assert (await engine.status(chat.chat_id)).clock == datetime(2026, 4, 1, 19, 0)
        assert fake.purposes == []  # the start was given: no reading of the opening (the greeting is the card's)
        prompt = await engine.next_prompt(chat.chat_id)
        assert "Scenario: A lighthouse rock in a gale." in prompt.messages[0]["content"]
    finally:
        await engine.close()
        await store.close()


def _made_rooms(ctx: RealCtx) -> list[str]:
    return [f"!made{index + 1}" for index, event in enumerate(ctx.sender.sent)
            if isinstance(event, tuple) and event[0] == "createRoom"]
