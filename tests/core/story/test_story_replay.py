"""A scripted 200-turn story (5 scenes, 2 skips, a meanwhile scene, swipes) replays to identical state."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from core.eventlog import clear_projections, replay
from core.llm import FakeLLM
from tests.core.conftest import check_fts_index, dump_projections
from tests.core.story.conftest import GUEST, GUEST_NAME, HOST, THIRD, collect, settle

TURNS = 200
SKIP_AT = {40, 120}  # "we rest for two hours" and the scene ends first
CLOSE_AT = {80, 160}  # the scene ends in plain words
MEANWHILE_AT = 100
REGENERATE_EVERY = 23


def addressee(messages):
    line = messages[-1]["content"].rsplit("latest line:\n", 1)[1]
    number = int(re.search(r"Line (\d+)", line).group(1))
    if "we rest" in line:
        return {"speaker": HOST, "time": "skip", "amount": "2h", "close_scene": True}
    if "we part" in line:
        return {"speaker": GUEST, "close_scene": True}
    return {"speaker": HOST if number % 3 else GUEST, "confidence": "high"}


class Story:
    def __init__(self):
        self.narrated = 0
        self.closes = 0

    def narrate(self, messages):
        self.narrated += 1
        system = messages[0]["content"]
        who = "Odile" if f"You are {GUEST_NAME}" in system else "Wren"
        mood = ["the festival begins", "the lanterns sway", "the festival is over", "salt on the sill"][self.narrated % 4]
        return f"{who} reply {self.narrated}: {mood}, said with some feeling."

    def threads(self, messages):
        self.closes += 1
        text = messages[-1]["content"]
        ids = [int(x) for x in re.findall(r"- id (\d+):", text)]
        if self.closes == 1:
            return {"open": [{"title": "The salt thief", "summary": "Salt on the sills."}]}
        if self.closes == 3 and ids:
            return {"update": [{"thread_id": ids[0], "summary": "The thief works at night."}],
                    "open": [{"title": "The dark lamp"}]}
        if self.closes == 4 and ids:
            return {"close": [{"thread_id": ids[0], "resolution": "Bram confessed."}]}
        return {}


def lifecycle(messages):
    text = messages[-1]["content"]
    exchange = text.split("answered:", 1)[1]
    if "salt on the sill" in exchange and "Salt merchants" not in text:
        return {"planned": [{"title": "Salt merchants arrive", "when": "tomorrow 8am"}]}
    events = re.findall(r"- id (\d+): [^(]+\((planned|started)", text)
    for event_id, status in events:
        if status == "planned" and "festival begins" in exchange:
            return {"transitions": [{"world_event_id": int(event_id), "to": "started"}]}
        if status == "started" and "festival is over" in exchange:
            return {"transitions": [{"world_event_id": int(event_id), "to": "completed"}]}
    return {"transitions": []}


def story_llm() -> FakeLLM:
    story = Story()
    return FakeLLM(routes={
        "addressee": addressee,
        "narrate": story.narrate,
        "scene_close": lambda messages: "From where I stood: " + messages[-1]["content"][-80:],
        "threads": story.threads,
        "lifecycle": lifecycle,
        "meanwhile": lambda messages: f"Off-screen line {len(messages)}: the harbour master's ledger.",
        "skip": "Two hours slip by.",
    })


async def test_a_200_turn_story_replays_to_identical_state(open_engine):
    fake = story_llm()
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    chat_id = chat.chat_id
    await engine.greeting(chat_id)
    start = await engine.chat_clock(chat_id)
    for hours in (3, 30, 60):
        await engine.plan_event(chat_id, f"Lantern festival +{hours}h", start + timedelta(hours=hours))

    kinds: list[str] = []
    for i in range(TURNS):
        if i == MEANWHILE_AT:
            lines = await collect(engine.meanwhile(chat_id, GUEST_NAME, THIRD, "the harbour master's ledger"))
            assert len([u for u in lines if u.done]) == 4
        text = f"Line {i}: " + ("we rest for two hours." if i in SKIP_AT else "we part for now." if i in CLOSE_AT
                                 else "tell me about the harbour.")
        updates = await collect(engine.post_turn(chat_id, text, f"$ev{i}"))
        kinds += [u.kind for u in updates if u.done]
        if i % REGENERATE_EVERY == 5 and i not in SKIP_AT:  # a narration has no reply to regenerate
            await collect(engine.regenerate(chat_id))
    await engine.close_scene(chat_id)
    await settle(engine, chat_id)

    assert kinds.count("scene") == 4 and kinds.count("narration") == 2 and kinds.count("digest") == 1
    scenes = await engine.db.reader.fetch_all(
        "SELECT kind, count(*) FROM scenes WHERE chat_id = ? GROUP BY kind ORDER BY kind", (chat_id,))
    assert [tuple(r) for r in scenes] == [("main", 5), ("meanwhile", 1)]
    assert await engine.chat_clock(chat_id) == start + timedelta(hours=4)
    statuses = sorted(e.status for e in await engine.list_world_events(chat_id))
    counts = dict(tuple(r) for r in await engine.db.reader.fetch_all(
        "SELECT kind, count(*) FROM events GROUP BY kind"))
    assert counts["world_event_reverted"] >= 1 and counts["memory_retracted"] >= 1  # swipes rolled back
    assert counts["thread_closed"] == 1 and counts["digest_consumed"] == 1
    assert "completed" in statuses or "started" in statuses
    assert {t.status for t in await engine.list_threads(chat_id)} == {"open", "closed"}
    status = await engine.status(chat_id)
    assert status.turns > TURNS and status.memories > TURNS and not status.scene_open

    before = await dump_projections(engine.db)
    async with engine.db.transaction() as tx:
        await clear_projections(tx)
    assert (await dump_projections(engine.db))["memories"] == []
    await replay(engine.db)
    after = await dump_projections(engine.db)
    assert after == before
    await check_fts_index(engine.db)
    assert isinstance(status.clock, datetime)
