"""The dispatcher decides and records inside the sync loop, and runs the work as tasks.

Events are real nio events parsed from event JSON; the store is a real adapter.sqlite3;
the engine and sender are stand-ins that record and can be slow (the engine keeps which
lines it received and which were answered, as the real one does).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from nio import RoomMessageText, SyncResponse

from adapter.matrix.dispatcher import Dispatcher, RecentlySeen
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, set_room_meta
from core.engine import OwedLine, TurnUpdate
from core.errors import NothingToRegenerateError, NothingToRewindError, TurnNotFoundError
from tests.adapter.matrix.stand_ins import BOT, Ctx

ALICE = "@alice:localhost"
_ids = itertools.count(1)


def text_event(sender: str, body: str, event_id: str | None = None) -> RoomMessageText:
    return RoomMessageText.from_dict(
        {
            "type": "m.room.message",
            "sender": sender,
            "event_id": event_id or f"$m{next(_ids)}",
            "origin_server_ts": 1,
            "content": {"msgtype": "m.text", "body": body},
        }
    )


class SlowEngine:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.turns: list[tuple[str, str, float, float]] = []  # chat, text, start, end
        self.cancelled: list[str] = []
        self.running: dict[str, asyncio.Event] = {}
        self.received: dict[str, str] = {}  # source id -> text
        self.chats: dict[str, str] = {}  # source id -> chat id
        self.answered: list[str] = []

    async def receive_line(self, chat_id: str, text: str, source_id: str, *, player: str | None = None) -> bool:
        if source_id in self.received:
            return False
        self.received[source_id] = text
        self.chats[source_id] = chat_id
        return True

    async def line_answered(self, chat_id: str, source_id: str) -> None:
        self.answered.append(source_id)

    def owed(self) -> list[str]:
        return [text for source, text in self.received.items() if source not in self.answered]

    async def owed_lines(self) -> list[OwedLine]:
        return [OwedLine(self.chats[source], source, text) for source, text in self.received.items() if source not in self.answered]

    async def post_turn(self, chat_id: str, text: str, source_id: str, *, player: str | None = None, replying_to: str | None = None):
        started = time.monotonic()
        stop = self.running.setdefault(chat_id, asyncio.Event())
        try:
            await asyncio.wait_for(stop.wait(), self.delay_s)
            truncated = True
        except TimeoutError:
            truncated = False
        self.running.pop(chat_id, None)
        self.turns.append((chat_id, text, started, time.monotonic()))
        yield TurnUpdate("Mira", "mira", f"Re: {text}", done=True, truncated=truncated, turn_id=1)

    async def edit_line(self, chat_id: str, source_id: str, text: str, *, player: str | None = None):
        raise TurnNotFoundError(source_id, "not a line of this story")

    async def take_back_line(self, chat_id: str, source_id: str, *, player: str | None = None):
        raise TurnNotFoundError(source_id, "not a line of this story")

    async def rewind(self, chat_id: str, steps: int = 1):
        raise NothingToRewindError("There is nothing to take back.")

    async def takes(self, chat_id: str):
        raise NothingToRegenerateError(chat_id, "There is no reply yet.")

    async def regenerate_target(self, chat_id: str):
        raise NothingToRegenerateError(chat_id, "There is no reply yet.")

    async def cancel(self, chat_id: str) -> bool:
        self.cancelled.append(chat_id)
        if chat_id in self.running:
            self.running[chat_id].set()
            return True
        return False


@pytest.fixture
async def store(tmp_path: Path):
    opened = await StateStore.open(tmp_path / "adapter.sqlite3")
    for number in (1, 2):
        await set_room_meta(opened, RoomMeta(f"!story{number}", RoomType.STORY, ALICE, "!space", f"chat-{number}", f"mx-{number}"))
    yield opened
    await opened.close()


def sync_with(events_by_room: dict[str, list[Any]]) -> SyncResponse:
    response = SyncResponse.from_dict({"next_batch": "s", "rooms": {"join": {}, "invite": {}, "leave": {}}})
    for room_id, events in events_by_room.items():
        joined = {room_id: {"timeline": {"events": []}, "state": {"events": []}}}
        info = SyncResponse.from_dict({"next_batch": "s", "rooms": {"join": joined}}).rooms.join[room_id]
        info.timeline.events.extend(events)
        response.rooms.join[room_id] = info
    return response


async def test_own_events_unbound_rooms_and_strangers(store: StateStore) -> None:
    ctx = Ctx(store, SlowEngine())
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_event("!story1", text_event(BOT, "my own reply"))
    await dispatcher.dispatch_event("!unknown", text_event(ALICE, "hello?"))
    await dispatcher.dispatch_event("!story1", text_event("@bob:localhost", "let me in"))
    await dispatcher.dispatch_event("!story1", text_event("@bob:localhost", "please"))
    await dispatcher.idle()
    assert ctx.engine.turns == []
    assert len([b for b in ctx.sender.bodies("!story1") if "whose story it is" in b]) == 1


async def test_lines_are_handed_to_the_engine_before_dispatch_returns(store: StateStore) -> None:
    ctx = Ctx(store, SlowEngine(delay_s=0.5))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_sync(sync_with({"!story1": [text_event(ALICE, "one"), text_event(ALICE, "two")]}))
    # The sync loop saves the token right after this: the lines are already durably owed.
    assert ctx.engine.owed() == ["one", "two"]
    await dispatcher.idle()
    assert ctx.engine.owed() == []


async def test_one_room_in_order_rooms_concurrently_and_a_replayed_event_once(store: StateStore) -> None:
    ctx = Ctx(store, SlowEngine(delay_s=0.3))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    repeated = text_event(ALICE, "first", event_id="$same")
    started = time.monotonic()
    await dispatcher.dispatch_sync(sync_with({"!story1": [repeated, text_event(ALICE, "second")], "!story2": [text_event(ALICE, "elsewhere")]}))
    await dispatcher.dispatch_sync(sync_with({"!story1": [repeated]}))  # the same event again, as after a replay
    await dispatcher.idle()
    elapsed = time.monotonic() - started

    in_room_one = [(text, start, end) for chat, text, start, end in ctx.engine.turns if chat == "chat-1"]
    assert [text for text, _, _ in in_room_one] == ["first", "second"]
    assert in_room_one[1][1] >= in_room_one[0][2]  # the second waited for the first
    assert elapsed < 0.9  # room two ran alongside room one (serially all three would take 0.9 s)


async def test_stop_is_not_queued_behind_the_turn_it_stops(store: StateStore) -> None:
    ctx = Ctx(store, SlowEngine(delay_s=5))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_event("!story1", text_event(ALICE, "a very long story please"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await dispatcher.dispatch_event("!story1", text_event(ALICE, "!stop"))
    await dispatcher.idle()
    assert time.monotonic() - started < 1
    assert ctx.engine.cancelled == ["chat-1"]
    assert any(b.endswith("…(stopped)") for b in ctx.sender.bodies("!story1"))


async def test_nothing_is_kept_for_rooms_whose_work_is_done(store: StateStore) -> None:
    """Work queues exist only while work runs: a process serving many rooms for months does not grow with them."""
    for number in range(3, 41):
        await set_room_meta(store, RoomMeta(f"!story{number}", RoomType.STORY, ALICE, "!space", f"chat-{number}", f"mx-{number}"))
    ctx = Ctx(store, SlowEngine(delay_s=30))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_sync(sync_with({f"!story{n}": [text_event(ALICE, f"line {n}")] for n in range(1, 41)}))
    while len(ctx.engine.running) < 40:  # every room's turn under way
        await asyncio.sleep(0.01)
    assert dispatcher.keys_held() == 40
    for turn_may_end in list(ctx.engine.running.values()):
        turn_may_end.set()
    await dispatcher.idle()
    assert len(ctx.engine.turns) == 40
    assert dispatcher.keys_held() == 0


async def test_strangers_and_invites_remembered_are_bounded(store: StateStore) -> None:
    ctx = Ctx(store, SlowEngine())
    dispatcher = Dispatcher(ctx, seen_capacity=50)  # type: ignore[arg-type]
    for number in range(200):
        await dispatcher.dispatch_event("!story1", text_event(f"@stranger{number}:localhost", "let me in"))
    await dispatcher.idle()
    assert len(dispatcher._strangers_told) == 50
    assert len([b for b in ctx.sender.bodies("!story1") if "whose story it is" in b]) == 200  # each told once
    await dispatcher.dispatch_event("!story1", text_event("@stranger199:localhost", "again"))
    await dispatcher.idle()
    assert len([b for b in ctx.sender.bodies("!story1") if "whose story it is" in b]) == 200  # a recent one is not told twice


def test_recently_seen_forgets_the_oldest_first() -> None:
    seen = RecentlySeen(3)
    for key in ("a", "b", "c"):
        seen.add(key)
    seen.add("a")  # seen again: now the newest
    seen.add("d")
    assert len(seen) == 3 and "b" not in seen and all(k in seen for k in ("a", "c", "d"))
