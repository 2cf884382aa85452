"""A skip or jump that passes a planned world event narrates it and starts it; story time in the
narration and lifecycle prompts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.eventlog import replay
from core.llm import FakeLLM
from core.llm.base import LLMTimeoutError
from core.state import plans
from tests.core.conftest import dump_projections
from tests.core.story.conftest import HOST, collect, settle

MIDNIGHT = datetime(2026, 4, 1, 0, 0)


async def story(open_engine, fake: FakeLLM, start: datetime = MIDNIGHT):
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, starts_at=start)
    return engine, chat.chat_id


def statuses(events) -> dict[str, str]:
    return {e.title: e.status for e in events}


async def test_an_eight_hour_skip_narrates_and_starts_the_events_it_passes(open_engine) -> None:
    fake = FakeLLM({"skip": "Dawn comes grey; the supply boat noses in to the jetty."})
    engine, chat = await story(open_engine, fake)
    boat = await engine.plan_event(chat, "The supply boat arrives", datetime(2026, 4, 1, 7, 0))
    await engine.plan_event(chat, "The lamp is lit", datetime(2026, 4, 1, 19, 0))
    await engine.plan_event(chat, "Nobody says when", MIDNIGHT + timedelta(days=30))

    result = await engine.skip(chat, timedelta(hours=8))

    [call] = fake.calls_for("skip")
    asked = call.last_user_message
    assert ("from Wednesday, April 1, 2026, 12:00 AM (late night) to Wednesday, April 1, 2026, 8:00 AM "
            "(early morning).") in asked
    assert "- At 7:00 AM: The supply boat arrives" in asked and "tell each of them" in asked
    assert "The lamp is lit" not in asked
    assert statuses(await engine.list_world_events(chat)) == {
        "The supply boat arrives": "started", "The lamp is lit": "planned", "Nobody says when": "planned"}
    stored = await plans.require_world_event(engine.db, boat.world_event_id)
    assert stored.started_at == datetime(2026, 4, 1, 7, 0)  # when it happened, not when the skip ended
    [told] = [t for t in (await engine.export_story(chat)).turns if t.role == "narration"]
    assert told.text == result.narration
    [change] = await plans.world_transitions_caused_by(engine.db, chat, await _narration_turn_id(engine, chat))
    assert (change.world_event_id, change.to) == (boat.world_event_id, "started")


async def _narration_turn_id(engine, chat: str) -> int:
    rows = await engine.db.reader.fetch_all(
        "SELECT turn_id FROM turns WHERE chat_id = ? AND role = 'narration'", (chat,))
    return rows[-1][0]


async def test_a_jump_starts_what_falls_due_on_the_way_and_names_the_day(open_engine) -> None:
    fake = FakeLLM({"skip": "The days pass."})
    engine, chat = await story(open_engine, fake, start=datetime(2026, 4, 1, 21, 0))
    await engine.plan_event(chat, "Market day", datetime(2026, 4, 2, 12, 0))
    await engine.plan_event(chat, "The wedding", datetime(2026, 4, 5, 15, 0))
    await engine.jump(chat, datetime(2026, 4, 2, 18, 0))
    asked = fake.calls_for("skip")[0].last_user_message
    assert "9:00 PM (night) to Thursday, April 2, 2026, 6:00 PM (evening)" in asked
    assert "- On Thursday, April 2, at 12:00 PM: Market day" in asked and "wedding" not in asked
    assert statuses(await engine.list_world_events(chat)) == {"Market day": "started", "The wedding": "planned"}


async def test_a_failed_narration_starts_nothing(open_engine) -> None:
    fake = FakeLLM(errors={"skip": LLMTimeoutError("slow", purpose="skip")})
    engine, chat = await story(open_engine, fake)
    await engine.plan_event(chat, "The supply boat arrives", datetime(2026, 4, 1, 7, 0))
    with pytest.raises(LLMTimeoutError):
        await engine.skip(chat, timedelta(hours=8))
    assert await engine.chat_clock(chat) == MIDNIGHT
    assert statuses(await engine.list_world_events(chat)) == {"The supply boat arrives": "planned"}


async def test_a_skip_asked_for_in_a_line_keeps_its_events_through_regenerate_and_replay(open_engine) -> None:
    replies = iter(["Morning, then.", "The boat is in.", "The boat is in, and late."])
    fake = FakeLLM({
        "addressee": lambda m: ({"speaker": HOST, "time": "skip", "amount": "8h"} if "sleep" in m[-1]["content"]
                                else {"speaker": HOST}),
        "skip": "The night passes; at seven the supply boat arrives.",
        "narrate": lambda _m: next(replies),
        "lifecycle": {},
    })
    engine, chat = await story(open_engine, fake)
    await engine.plan_event(chat, "The supply boat arrives", datetime(2026, 4, 1, 7, 0))
    updates = await collect(engine.post_turn(chat, "Let's sleep until morning.", "$1"))
    assert [u.kind for u in updates if u.done] == ["reply", "narration"]  # answered, then the night passes
    assert "At 7:00 AM: The supply boat arrives" in fake.calls_for("skip")[0].last_user_message
    await collect(engine.post_turn(chat, "Is the boat in?", "$2"))
    await settle(engine, chat)
    await collect(engine.regenerate(chat))  # rolls back what the new reply caused, not what the skip did
    await settle(engine, chat)
    assert statuses(await engine.list_world_events(chat)) == {"The supply boat arrives": "started"}
    before = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == before


async def test_the_lifecycle_classifier_is_told_the_story_time_and_part_of_day(open_engine) -> None:
    fake = FakeLLM({"narrate": "The market opens tomorrow at noon.", "lifecycle": {}})
    engine, chat = await story(open_engine, fake, start=datetime(2026, 4, 1, 22, 15))
    await collect(engine.post_turn(chat, "Anything worth seeing?", "$1"))
    await settle(engine, chat)
    [call] = fake.calls_for("lifecycle")
    assert "Story time now: Wednesday, April 1, 2026, 10:15 PM (night)." in call.system_prompt


async def test_the_demo_model_tells_the_events_a_skip_passes(tmp_path) -> None:
    from core.engine import Engine
    from core.llm.demo import DemoLLM

    engine = await Engine.open(tmp_path / "engine.sqlite3", DemoLLM(word_delay_s=0))
    try:
        chat = (await engine.create_chat(owner="@p:hs", host=HOST, starts_at=MIDNIGHT)).chat_id
        await engine.plan_event(chat, "The supply boat arrives", datetime(2026, 4, 1, 7, 0))
        result = await engine.skip(chat, timedelta(hours=8))
        assert "At 7:00 AM, the supply boat arrives." in result.narration
    finally:
        await engine.close()
