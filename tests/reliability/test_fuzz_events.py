"""Fuzzed room events through the real dispatcher: never a crash, never a stranger's line routed.

Event JSON of every shape a client or a hostile user can send (wrong types for `body` and
`msgtype`, odd relations, media, reactions, encrypted blobs, unknown types) is parsed by nio as
in a sync and dispatched; the engine and sender are the stand-ins of the dispatcher tests.
Commands are fuzzed in tests/adapter/matrix/test_commands.py.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nio import Event

from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, set_room_meta
from tests.adapter.matrix.test_dispatcher import ALICE, BOT, Ctx, SlowEngine

MALLORY = "@mallory:localhost"
OWNERS_LINE = {"type": "m.room.message", "sender": ALICE, "content": {"msgtype": "m.text", "body": "hello"}}
_ids = itertools.count(1)

junk = st.one_of(
    st.none(), st.integers(), st.booleans(), st.text(max_size=30),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
bodies = st.one_of(st.text(max_size=300).filter(lambda s: not s.lstrip().startswith("!")), junk)
relations = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"rel_type": st.sampled_from(["m.replace", "m.annotation", "m.thread", "x"]), "event_id": st.one_of(st.text(max_size=10), junk)},
        optional={"key": st.one_of(st.sampled_from(["⏹", "👍", "x"]), junk)},
    ),
    st.fixed_dictionaries({"m.in_reply_to": st.one_of(st.fixed_dictionaries({"event_id": st.text(max_size=10)}), junk)}),
    junk,
)
contents = st.fixed_dictionaries(
    {},
    optional={
        "msgtype": st.one_of(st.sampled_from(["m.text", "m.notice", "m.emote", "m.image", "m.file", "m.video"]), junk),
        "body": bodies,
        "format": st.one_of(st.just("org.matrix.custom.html"), junk),
        "formatted_body": st.one_of(st.text(max_size=50), junk),
        "url": st.one_of(st.just("mxc://localhost/abc"), junk),
        "m.relates_to": relations,
        "m.new_content": st.one_of(st.fixed_dictionaries({"msgtype": st.just("m.text"), "body": bodies}), junk),
        "algorithm": st.one_of(st.just("m.megolm.v1.aes-sha2"), junk),
        "ciphertext": st.one_of(st.text(max_size=20), junk),
    },
)
events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["m.room.message", "m.reaction", "m.sticker", "m.room.redaction", "m.room.encrypted", "org.rpbot.room", "x.custom"]),
        "sender": st.sampled_from([ALICE, BOT, MALLORY]),
        "content": contents,
    },
    optional={"redacts": st.text(max_size=10), "state_key": st.just("")},
)


@pytest.fixture
async def store(tmp_path: Path):
    opened = await StateStore.open(tmp_path / "adapter.sqlite3")
    await set_room_meta(opened, RoomMeta("!story", RoomType.STORY, ALICE, "!space", "chat-1", "mx-1"))
    await set_room_meta(opened, RoomMeta("!space", RoomType.SPACE, ALICE, "!space"))
    yield opened
    await opened.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events, room=st.sampled_from(["!story", "!space", "!unknown"]))
@example(event=OWNERS_LINE, room="!story")
async def test_no_event_crashes_the_dispatcher_or_reaches_the_story_unless_the_owner_said_it(
    store: StateStore, event: dict, room: str, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = Ctx(store, SlowEngine())
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    event = {**event, "event_id": f"$fuzz{next(_ids)}", "origin_server_ts": 1}
    parsed = Event.parse_event(event)
    with caplog.at_level(logging.ERROR):
        caplog.clear()
        await dispatcher.dispatch_event(room, parsed)
        await dispatcher.idle()
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    for _, text, _, _ in ctx.engine.turns:
        assert isinstance(text, str) and text.strip()
    if ctx.engine.turns:
        assert event["sender"] == ALICE and room == "!story" and event["type"] == "m.room.message"
    assert ctx.engine.owed() == []  # whatever was taken was answered: nothing left owed
    if room == "!story" and {k: event.get(k) for k in OWNERS_LINE} == OWNERS_LINE:
        assert ctx.engine.turns, "the owner's plain line was not routed: the checks above would hold vacuously"
