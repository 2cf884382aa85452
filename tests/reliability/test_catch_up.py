"""Catch-up after a crash: a line that arrived just before the bot's last event is still answered.

Found by the crash loop: the player's line came 26 ms before the bot's final edit of the previous
reply, the bot was killed before it saved the sync token, and on restart catch-up only took the
events after the bot's last one, so the line was never answered.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from nio import RoomMessageText

from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, set_room_meta
from tests.adapter.matrix.test_dispatcher import (
    ALICE,
    BOT,
    Ctx,
    SlowEngine,
    sync_with,
    text_event,
)

_ids = itertools.count(1)


def bot_edit() -> RoomMessageText:
    return RoomMessageText.from_dict({
        "type": "m.room.message", "sender": BOT, "event_id": f"$edit{next(_ids)}", "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "* Mira: the whole earlier reply",
                    "m.new_content": {"msgtype": "m.text", "body": "Mira: the whole earlier reply"},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": "$earlier"}},
    })


@pytest.fixture
async def store(tmp_path: Path):
    opened = await StateStore.open(tmp_path / "adapter.sqlite3")
    await set_room_meta(opened, RoomMeta("!story", RoomType.STORY, ALICE, "!space", "chat-1", "mx-1"))
    yield opened
    await opened.close()


async def test_a_line_before_the_bots_last_edit_is_answered_once_when_the_cache_survived(store: StateStore) -> None:
    answered_before = text_event(ALICE, "a line answered before the crash")
    timeline = [answered_before, text_event(ALICE, "the line that came just before the edit"), text_event(ALICE, "!status"), bot_edit()]
    ctx = Ctx(store, SlowEngine())
    await ctx.engine.receive_line("chat-1", answered_before.body, answered_before.event_id)
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.catch_up(sync_with({"!story": timeline}), since_saved_token=True)
    await dispatcher.idle()
    assert [text for _, text, _, _ in ctx.engine.turns] == ["the line that came just before the edit"]


async def test_without_a_saved_token_only_events_after_the_bots_last_are_taken(store: StateStore) -> None:
    timeline = [text_event(ALICE, "old history"), bot_edit(), text_event(ALICE, "said while away")]
    ctx = Ctx(store, SlowEngine())
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.catch_up(sync_with({"!story": timeline}))
    await dispatcher.idle()
    assert [text for _, text, _, _ in ctx.engine.turns] == ["said while away"]
