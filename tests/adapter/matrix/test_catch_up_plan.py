"""What to catch up on after the bot was away is a pure plan (`catch_up.plan_catch_up`), decided
from the sync's timelines alone; `Dispatcher.catch_up` reads older pages where the plan asks and
dispatches the events it names."""

from __future__ import annotations

import ast
import inspect
import itertools
from pathlib import Path
from typing import Any

from nio import RoomMessagesResponse, RoomMessageText

import adapter.matrix.catch_up as catch_up
from adapter.matrix.catch_up import Backlog, CatchUpPlan, backlogs, plan_catch_up
from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, set_room_meta
from tests.adapter.matrix.test_dispatcher import ALICE, BOT, Ctx, SlowEngine, sync_with

_ids = itertools.count(1)


def said(sender: str, body: str, *, edit_of: str | None = None) -> RoomMessageText:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if edit_of:
        content["m.relates_to"] = {"rel_type": "m.replace", "event_id": edit_of}
    return RoomMessageText.from_dict(
        {"type": "m.room.message", "sender": sender, "event_id": f"$c{next(_ids)}", "origin_server_ts": 1, "content": content}
    )


def bodies(plan: CatchUpPlan) -> list[tuple[str, str]]:
    return [(room_id, event.body) for room_id, event in plan.dispatch]


STORY = RoomMeta("!story", RoomType.STORY, ALICE, "!space", "chat-1", "mx-1")
LOBBY = RoomMeta("!lobby", RoomType.LOBBY, ALICE, "!space")


def test_the_plan_is_a_plain_function_that_can_reach_no_io() -> None:
    assert not inspect.iscoroutinefunction(plan_catch_up) and not inspect.iscoroutinefunction(backlogs)
    tree = ast.parse(Path(catch_up.__file__).read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {name for module, name in imported if module == "adapter.matrix.store"} == {"RoomMeta"}
    assert {name for module, name in imported if module == "adapter.matrix.routing"} == {"is_story_line"}
    pure = {"__future__", "collections.abc", "dataclasses", "typing", "adapter.matrix.store", "adapter.matrix.room_types", "adapter.matrix.routing"}
    assert {module for module, _ in imported} <= pure


def test_what_was_said_after_the_bots_last_event_is_dispatched_in_order() -> None:
    events = (said(ALICE, "old history"), said(BOT, "a reply"), said(ALICE, "said while away"), said(ALICE, "!status"))
    plan = plan_catch_up([Backlog("!story", RoomType.STORY, events)], BOT, since_saved_token=False)
    assert plan.page_back == () and bodies(plan) == [("!story", "said while away"), ("!story", "!status")]


def test_with_the_cache_kept_story_lines_before_the_bots_last_event_are_dispatched_too_but_nothing_else() -> None:
    reply = said(BOT, "a reply")
    events = (said(ALICE, "a line just before the edit"), said(ALICE, "!status"), said(ALICE, "fixed", edit_of="$x"),
              said(BOT, "* the whole reply", edit_of=reply.event_id), said(ALICE, "after"))
    story = Backlog("!story", RoomType.STORY, events)
    lobby = Backlog("!lobby", RoomType.LOBBY, events)
    plan = plan_catch_up([story, lobby], BOT, since_saved_token=True)
    assert bodies(plan) == [("!story", "a line just before the edit"), ("!story", "after"), ("!lobby", "after")]
    assert bodies(plan_catch_up([story], BOT, since_saved_token=False)) == [("!story", "after")]


def test_a_cut_short_timeline_without_the_bot_is_read_further_back_before_anything_is_decided() -> None:
    cut_short = Backlog("!story", RoomType.STORY, (said(ALICE, "newest"),), older="t1")
    plan = plan_catch_up([cut_short], BOT, since_saved_token=False)
    assert plan == CatchUpPlan(page_back=(cut_short,), dispatch=())
    with_page = cut_short.with_older_page([said(BOT, "reply"), said(ALICE, "older")], end="t2")  # newest first, as paged
    assert [e.body for e in with_page.events] == ["older", "reply", "newest"] and with_page.pages == 1
    assert bodies(plan_catch_up([with_page], BOT, since_saved_token=False)) == [("!story", "newest")]


def test_paging_stops_at_the_limit_or_when_the_homeserver_has_no_more() -> None:
    long_silence = Backlog("!story", RoomType.STORY, (said(ALICE, "a"), said(ALICE, "b")), older="t9", pages=5)
    assert bodies(plan_catch_up([long_silence], BOT, since_saved_token=False)) == [("!story", "a"), ("!story", "b")]
    assert plan_catch_up([long_silence], BOT, since_saved_token=False, max_pages=6).page_back == (long_silence,)
    no_more = Backlog("!story", RoomType.STORY, (said(ALICE, "a"),), older="t1").whole()
    assert bodies(plan_catch_up([no_more], BOT, since_saved_token=False)) == [("!story", "a")]


def test_only_rooms_the_bot_serves_with_players_in_them_are_caught_up() -> None:
    sync = sync_with({"!story": [said(ALICE, "hi")], "!lobby": [], "!space": [said(ALICE, "?")], "!unknown": [said(ALICE, "?")]})
    sync.rooms.join["!story"].timeline.limited = True
    sync.rooms.join["!story"].timeline.prev_batch = "p1"
    rooms = {"!story": STORY, "!lobby": LOBBY, "!space": RoomMeta("!space", RoomType.SPACE, ALICE, "!space"), "!unknown": None}
    found = backlogs(sync.rooms.join, rooms)
    assert [(b.room_id, b.room_type, b.older) for b in found] == [("!story", RoomType.STORY, "p1"), ("!lobby", RoomType.LOBBY, None)]


class PagingClient:
    """The client's `room_messages`, answering from a room's older history, newest first."""

    def __init__(self, older: list[RoomMessageText]) -> None:
        self.user_id, self.rooms = BOT, {}
        self.pages = [older[max(0, end - 2) : end] for end in range(len(older), 0, -2)]  # the newest page first
        self.asked: list[str] = []

    async def room_messages(self, room_id: str, start: str, direction: Any, limit: int) -> RoomMessagesResponse:
        self.asked.append(start)
        page = self.pages.pop(0) if self.pages else []
        return RoomMessagesResponse(room_id, list(reversed(page)), start, f"t{len(self.asked)}" if self.pages else "")


async def test_the_dispatcher_reads_the_pages_the_plan_asks_for_and_dispatches_what_it_names(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "adapter.sqlite3")
    try:
        await set_room_meta(store, STORY)
        ctx = Ctx(store, SlowEngine())
        ctx.client = PagingClient([said(BOT, "my last reply"), said(ALICE, "one"), said(ALICE, "two")])  # type: ignore[assignment]
        sync = sync_with({"!story": [said(ALICE, "three")]})
        sync.rooms.join["!story"].timeline.limited = True
        sync.rooms.join["!story"].timeline.prev_batch = "t0"
        dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
        assert await dispatcher.catch_up(sync) == 3
        await dispatcher.idle()
        assert ctx.client.asked == ["t0", "t1"]  # type: ignore[attr-defined]
        assert [text for _, text, _, _ in ctx.engine.turns] == ["one", "two", "three"]
    finally:
        await store.close()
