"""Every request fits the model: a story built to overflow (a card ten times too long, a long persona
and scenario, dozens of open threads and planned events, player lines of the longest kind,
models that answer at length) and a scene of 300 exchanges that only closes at the end; every
request the fake model sees, of every purpose, fits `llm.context_tokens`."""

from __future__ import annotations

import json
from datetime import timedelta

from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from core.services.tokens import estimate_prompt_tokens
from core.state import threads as thread_state
from core.text_input import MAX_LINE_CHARS, MAX_SCENARIO_CHARS
from tests.core.conftest import sqlite_only
from tests.core.story.conftest import GUEST, collect

CONTEXT = 2048
LONG = "The fog rolls in over the harbour and every lamp along the quay burns low and yellow. "
CARD = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Oswin Thrale", "description": LONG * 120, "personality": LONG * 30, "scenario": LONG * 20,
    "first_mes": "*Oswin looks up from the ledger.* " + LONG * 10, "mes_example": ("<START>\n{{user}}: Hi\n{{char}}: " + LONG * 5) * 8,
    "post_history_instructions": "Stay in the fog.", "system_prompt": "", "creator_notes": "", "tags": [],
    "alternate_greetings": [], "creator": "", "character_version": "", "extensions": {}}}
PURPOSES = {"narrate", "addressee", "scene_close", "scene_part", "story_so_far", "threads", "lifecycle", "relationship",
            "meanwhile", "skip", "opening_time"}


def route(messages) -> AddresseeDecision:
    line = messages[-1]["content"]
    if "sleep" in line:
        return AddresseeDecision(speaker="oswin-thrale", confidence="high", time="skip", amount="2h")
    return AddresseeDecision(speaker=GUEST if "Odile" in line else "oswin-thrale", confidence="high")


def line(n: int) -> str:
    kinds = [
        "Thank you, Oswin, I am sorry about the ledger. " * 3,  # feelings: a relationship reading
        "Tomorrow at noon the festival begins at the harbour, and the boat arrives. " * 2,  # plans: lifecycle
        ("Odile, " + LONG * 200)[:MAX_LINE_CHARS],  # the longest line there is, naming the guest: routing
        "I walk along the quay. " + LONG,
    ]
    return (f"Line {n}: " + kinds[n % len(kinds)])[:MAX_LINE_CHARS]


def verbose_llm() -> FakeLLM:
    return FakeLLM({
        "narrate": LONG * 12, "addressee": route, "scene_close": "I remember it all. " + LONG * 30,
        "scene_part": "I noted it. " + LONG * 25, "story_so_far": "So far: " + LONG * 30,
        "threads": {"open": [{"title": "The fog " + "very " * 40, "summary": LONG * 10}]},
        "lifecycle": {"planned": [{"title": "Another festival", "when": "tomorrow at noon", "description": LONG * 10}]},
        "relationship": {"affinity": 1, "trust": 1, "why": LONG}, "meanwhile": LONG * 15, "skip": LONG * 10,
        "opening_time": {"part_of_day": "night"},
    })


@sqlite_only  # the longest engine test: its reads run on PostgreSQL in the shorter stories of the others
async def test_every_request_of_a_300_exchange_scene_fits_the_context(open_engine) -> None:
    fake = verbose_llm()
    engine = await open_engine(fake, budget_tokens=CONTEXT)
    oswin = await engine.import_character(json.dumps(CARD))
    owner = "@p:hs"
    await engine.set_persona(owner, "Tobin Reyes", ("a deckhand who talks too much, " * 40)[:1000])
    chat = (await engine.create_chat(owner=owner, host=oswin.character_id, guest=GUEST,
                                     scenario=(LONG * 60)[:MAX_SCENARIO_CHARS])).chat_id
    await engine.greeting(chat)
    clock = await engine.chat_clock(chat)
    for n in range(40):
        await engine.plan_event(chat, f"Event {n}: " + LONG * 3, clock + timedelta(hours=1 + n))
        await thread_state.open_thread(engine.db, chat, f"Thread {n} " + "long " * 30, LONG * 4)
    for n in range(5):  # short scenes first, so the last close rolls older ones into a story so far
        await collect(engine.post_turn(chat, line(n), f"$short{n}"))
        await engine.close_scene(chat)
    for n in range(300):
        await collect(engine.post_turn(chat, line(n), f"${n}"))
        if n == 150:
            await collect(engine.meanwhile(chat, oswin.character_id, GUEST, "an argument " + LONG * 5))
            await collect(engine.post_turn(chat, "I need to sleep for a while.", "$sleep"))
        if n % 25 == 0:
            await engine.pipeline.summary_jobs.settle(chat)
    await engine.pipeline.close()
    await engine.close_scene(chat)

    assert PURPOSES <= {call.purpose for call in fake.calls}, PURPOSES - {call.purpose for call in fake.calls}
    too_big = [(call.purpose, estimate_prompt_tokens(call.messages)) for call in fake.calls
               if estimate_prompt_tokens(call.messages) > CONTEXT]
    worst: dict[str, int] = {}
    for purpose, size in too_big:
        worst[purpose] = max(worst.get(purpose, 0), size)
    assert worst == {}

