"""World events: planned by command, moved by the lifecycle classifier after the reply, undone by regenerate."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.errors import InvalidTimeError
from core.eventlog import replay
from core.llm import FakeLLM
from core.state import plans
from core.storage.sql import json_integer
from tests.core.conftest import dump_projections
from tests.core.story.conftest import HOST, collect, settle

DUSK = datetime(2026, 4, 1, 19, 0)


def lifecycle_from_reply(messages):
    """Start the festival when the reply says so, complete it when the reply says it is over."""
    exchange = messages[-1]["content"].split("answered:", 1)[1]
    event_id = int(messages[-1]["content"].split("- id ", 1)[1].split(":", 1)[0])
    if "is over" in exchange:
        return {"transitions": [{"world_event_id": event_id, "to": "completed"}]}
    if "begins" in exchange:
        return {"transitions": [{"world_event_id": event_id, "to": "started"}]}
    return {"transitions": []}


async def test_regenerating_the_turn_that_completed_an_event_restores_it_to_started(open_engine):
    replies = iter(["The festival begins!", "The festival is over.", "Not yet, the lanterns still burn."])
    fake = FakeLLM(routes={"narrate": lambda _m: next(replies), "lifecycle": lifecycle_from_reply})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    planned = await engine.plan_event(chat.chat_id, "Lantern festival", DUSK)
    assert planned.status == "planned" and planned.due_at == DUSK

    await collect(engine.post_turn(chat.chat_id, "Look at the lanterns!", "$1"))
    await settle(engine, chat.chat_id)
    # The lifecycle call runs after the reply, never before narration.
    assert fake.purposes[:3] == ["opening_time", "narrate", "lifecycle"]
    await collect(engine.post_turn(chat.chat_id, "And now?", "$2"))
    await settle(engine, chat.chat_id)
    [event] = await engine.list_world_events(chat.chat_id)
    assert event.status == "completed"

    await collect(engine.regenerate(chat.chat_id))
    await settle(engine, chat.chat_id)
    [event] = await engine.list_world_events(chat.chat_id)
    assert event.status == "started"
    stored = await plans.require_world_event(engine.db, event.world_event_id)
    assert stored.ended_at is None and stored.started_at is not None
    causes = await engine.db.reader.fetch_all(
        f"SELECT {json_integer(engine.db.dialect, 'payload', 'cause_turn_id')} FROM events"
        " WHERE kind = 'world_event_transitioned'"
    )
    assert all(row[0] is not None for row in causes)


async def test_no_lifecycle_call_without_live_world_events(open_engine):
    fake = FakeLLM(routes={"narrate": "Hello."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hi.", "$1"))
    await settle(engine, chat.chat_id)
    assert fake.purposes == ["opening_time", "narrate"]
    with pytest.raises(InvalidTimeError):
        await engine.plan_event(chat.chat_id, "Yesterday's market", datetime(2026, 3, 1, 9, 0))


async def test_an_event_announced_in_a_reply_is_planned_and_withdrawn_on_regenerate(open_engine):
    replies = iter(["The market opens tomorrow at noon.", "Nothing much happens here."])

    def lifecycle(messages):
        exchange = messages[-1]["content"].split("answered:", 1)[1]
        if "market opens" in exchange:
            return {"planned": [{"title": "Market day", "when": "tomorrow at noon"}]}
        return {}

    fake = FakeLLM(routes={"narrate": lambda _m: next(replies), "lifecycle": lifecycle})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Anything worth seeing?", "$1"))
    await settle(engine, chat.chat_id)
    [event] = await engine.list_world_events(chat.chat_id)
    assert (event.title, event.status, event.due_at) == ("Market day", "planned", datetime(2026, 4, 2, 12, 0))

    await collect(engine.regenerate(chat.chat_id))
    await settle(engine, chat.chat_id)
    assert await engine.list_world_events(chat.chat_id) == []
    withdrawn = await engine.db.reader.fetch_all("SELECT count(*) FROM events WHERE kind = 'world_event_withdrawn'")
    assert withdrawn[0][0] == 1
    before = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == before
