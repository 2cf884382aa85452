"""A story begins at a time that fits it: the player's words, its opening read once, or the default."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pytest

from core.engine import STORY_START, Engine
from core.errors import InvalidInputError, InvalidTimeError
from core.eventlog import replay
from core.eventlog.events import parse_payload
from core.llm import FakeLLM
from core.llm.base import LLMTimeoutError
from core.llm.demo import DemoLLM
from core.services.opening_time import (
    DEFAULT_START,
    MAX_TOKENS,
    PURPOSE,
    OpeningTime,
    read_start_time,
    start_from,
)
from core.state import world
from tests.core.conftest import add_cast, dump_projections
from tests.core.prompts.scripted import DATA, PERSONA, describe_call
from tests.core.story.conftest import GUEST, HOST, THIRD, collect

OWNER = "@p:hs"
GOLDEN = Path(__file__).parents[1] / "prompts" / "golden" / "opening_time.txt"


@pytest.mark.parametrize(("text", "start"), [
    ("dusk", datetime(2026, 4, 1, 19, 0)),
    ("before dawn", datetime(2026, 4, 1, 5, 0)),
    ("11pm", datetime(2026, 4, 1, 23, 0)),
    ("7 am", datetime(2026, 4, 1, 7, 0)),
    ("23:40", datetime(2026, 4, 1, 23, 40)),
    ("a winter night", datetime(2026, 1, 15, 22, 0)),
    ("late autumn", datetime(2026, 11, 20, 9, 0)),
    ("dusk in late autumn, 1887", datetime(1887, 11, 20, 19, 0)),
    ("October 14 1887 11:40pm", datetime(1887, 10, 14, 23, 40)),
    ("midnight in January", datetime(2026, 1, 15, 0, 0)),
    ("March 3", datetime(2026, 3, 3, 9, 0)),
    ("a saturday night", datetime(2026, 4, 4, 22, 0)),
    ("tomorrow 9am", datetime(2026, 4, 2, 9, 0)),  # beyond the words above: core.timeparse
    ("saturday noon", datetime(2026, 4, 4, 12, 0)),
    ("banana", None),
    ("the third night of the blizzard", None),
    ("", None),
])
def test_the_players_words_for_the_start(text: str, start: datetime | None) -> None:
    assert read_start_time(text) == start


@pytest.mark.parametrize(("reading", "start"), [
    (OpeningTime(), DEFAULT_START),
    (OpeningTime(part_of_day="before dawn"), datetime(2026, 4, 1, 5, 0)),
    (OpeningTime(part_of_day="late night", season="winter"), datetime(2026, 1, 15, 1, 0)),
    (OpeningTime(season="late autumn", part_of_day="night"), datetime(2026, 11, 20, 22, 0)),
    (OpeningTime(year=1887, month=10, day=14, clock="23:40", part_of_day="night"), datetime(1887, 10, 14, 23, 40)),
    (OpeningTime(month=1), datetime(2026, 1, 15, 9, 0)),  # a month without a day: its middle
    (OpeningTime(month=2, day=30, clock="25:99"), datetime(2026, 2, 15, 9, 0)),  # impossible parts ignored
    (OpeningTime(month=13, day=-1, year=-5, clock="soon"), DEFAULT_START),
])
def test_a_reading_becomes_a_story_time(reading: OpeningTime, start: datetime) -> None:
    assert start_from(reading) == start


async def test_a_given_start_and_scenario_need_no_model(open_engine) -> None:
    fake = FakeLLM({})  # any call would fail the test
    engine = await open_engine(fake)
    when = datetime(1887, 10, 14, 23, 40)
    info = await engine.create_chat(owner=OWNER, host=HOST, starts_at=when, scenario="  A lighthouse at night.  ")
    assert info.starts_at == when and await engine.chat_clock(info.chat_id) == when
    assert (await world.require_chat(engine.db, info.chat_id)).scenario == "A lighthouse at night."
    assert fake.calls == []


async def test_the_opening_is_read_once_by_a_classifier(open_engine) -> None:
    fake = FakeLLM({PURPOSE: {"part_of_day": "before dawn", "season": "winter"}, "narrate": "Hm."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host=HOST, scenario="A frozen harbour; the fog has not lifted.")
    assert await engine.chat_clock(chat.chat_id) == datetime(2026, 1, 15, 5, 0)
    [call] = fake.calls
    assert (call.purpose, call.role, call.response_schema) == (PURPOSE, "classifier", OpeningTime)
    assert call.max_tokens == MAX_TOKENS <= 300
    user = call.last_user_message
    assert "A frozen harbour" in user and "Saltmere" not in user  # the story's scenario, not the card's
    assert "Three maps gone in a week" in user  # the host's greeting
    assert "{" not in call.system_prompt  # described in words, no template to copy back
    assert '"before dawn"' in call.system_prompt and '"late autumn"' in call.system_prompt
    await collect(engine.post_turn(chat.chat_id, "Hello?", "$1"))
    assert fake.purposes == [PURPOSE, "narrate"]  # once, at creation


async def test_the_hosts_card_is_read_when_the_story_has_no_scenario(open_engine) -> None:
    fake = FakeLLM({PURPOSE: {"season": "late autumn"}})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST)
    assert await engine.chat_clock(chat.chat_id) == datetime(2026, 11, 20, 9, 0)
    user = fake.calls_for(PURPOSE)[0].last_user_message
    assert "Saltmere, late autumn" in user and "{{user}}" not in user and "Vessany" not in user  # not the guest's


@pytest.mark.parametrize("answer", [{}, "not json at all", {"part_of_day": "teatime"}])
async def test_nothing_stated_or_nonsense_keeps_the_default(open_engine, answer) -> None:
    engine = await open_engine(FakeLLM({PURPOSE: answer}))
    chat = await engine.create_chat(owner=OWNER, host=HOST)
    assert await engine.chat_clock(chat.chat_id) == STORY_START == datetime(2026, 4, 1, 9, 0)


async def test_a_model_failure_keeps_the_default(open_engine) -> None:
    fake = FakeLLM(errors={PURPOSE: LLMTimeoutError("slow", purpose=PURPOSE)})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host=HOST)
    assert await engine.chat_clock(chat.chat_id) == STORY_START and fake.purposes == [PURPOSE]


async def test_no_call_when_the_opening_says_nothing_of_time(open_engine) -> None:
    fake = FakeLLM({})
    engine = await open_engine(fake)
    await add_cast(engine.db)  # characters with no scenario and no greeting
    chat = await engine.create_chat(owner=OWNER, host="ada", scenario="A quarrel over a will.")
    assert await engine.chat_clock(chat.chat_id) == STORY_START and fake.calls == []


async def test_the_demo_model_reads_plain_words(tmp_path) -> None:
    engine = await Engine.open(tmp_path / "engine.sqlite3", DemoLLM(word_delay_s=0))
    try:
        tamsin = await engine.create_chat(owner=OWNER, host=THIRD)  # "a little before dawn"
        wren = await engine.create_chat(owner=OWNER, host=HOST)  # "Saltmere, late autumn"
        odile = await engine.create_chat(owner=OWNER, host=GUEST)  # a storm front, no time
        assert await engine.chat_clock(tamsin.chat_id) == datetime(2026, 4, 1, 5, 0)
        assert await engine.chat_clock(wren.chat_id) == datetime(2026, 11, 20, 9, 0)
        assert await engine.chat_clock(odile.chat_id) == STORY_START
    finally:
        await engine.close()


async def test_one_scenario_for_everyone_present(open_engine) -> None:
    fake = FakeLLM({"narrate": "Aye."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST, starts_at=STORY_START,
                                    scenario="Both are stranded on a lighthouse rock.")
    await collect(engine.post_turn(chat.chat_id, "Wren, what now?", "$1"))
    await collect(engine.post_turn(chat.chat_id, "Captain, and you?", "$2"))
    host_prompt, guest_prompt = (c.system_prompt for c in fake.calls_for("narrate"))
    for prompt in (host_prompt, guest_prompt):
        assert "Scenario: Both are stranded on a lighthouse rock." in prompt
        assert "Saltmere" not in prompt.split("Scenario:")[1] and "Vessany" not in prompt


async def test_bad_input_writes_nothing(open_engine) -> None:
    engine = await open_engine(FakeLLM({}))
    with pytest.raises(InvalidInputError):
        await engine.create_chat(owner=OWNER, host=HOST, starts_at=STORY_START, scenario="x" * 4001)
    with pytest.raises(InvalidTimeError):
        await engine.create_chat(owner=OWNER, host=HOST, starts_at=datetime(9500, 1, 1))
    assert await world.list_chats(engine.db) == []


async def test_scenario_and_start_replay_and_older_logs_still_read(open_engine) -> None:
    engine = await open_engine(FakeLLM({PURPOSE: {"part_of_day": "evening"}}))
    await engine.create_chat(owner=OWNER, host=HOST, scenario="Lamps lit against the dark.")
    await engine.create_chat(owner=OWNER, host=GUEST, starts_at=datetime(1887, 10, 14, 23, 40))
    before = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == before
    older = parse_payload("chat_created", {"chat_id": "c", "owner": OWNER, "host": HOST, "clock": STORY_START})
    assert older.scenario == ""  # type: ignore[attr-defined]


async def test_the_opening_time_prompt_matches_its_golden_file(open_engine) -> None:
    """The request as a golden file, like every other prompt (RPBOT_UPDATE_GOLDEN=1 rewrites it)."""
    fake = FakeLLM({})
    engine = await open_engine(fake)
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())  # "every {{weekday}} morning"
    await engine.set_persona(OWNER, *PERSONA)
    await engine.create_chat(owner=OWNER, host=ilse.character_id)
    text = describe_call(fake.calls_for(PURPOSE)[0])
    if os.environ.get("RPBOT_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "the opening_time prompt changed; review, then RPBOT_UPDATE_GOLDEN=1"
