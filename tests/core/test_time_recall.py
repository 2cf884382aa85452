"""Recall by story time and order: "the first thing", "yesterday", "last night", with words too."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from core.engine import Engine
from core.llm import FakeLLM
from core.services.time_recall import TimeWindow, memories_from_time, recall_by_time, time_window
from core.state import memory
from tests.core.conftest import PLAYER
from tests.core.story.conftest import HOST, collect

NOW = datetime(1890, 10, 8, 10, 30)  # a Wednesday morning


def day(offset: int, hour: int = 0) -> datetime:
    return datetime(1890, 10, 8) + timedelta(days=offset, hours=hour)


@pytest.mark.parametrize(("query", "start", "end", "order", "words"), [
    ("yesterday", day(-1), day(0), None, ""),
    ("What happened yesterday evening?", day(-1, 18), day(0), None, "happened"),
    ("this morning", day(0, 4), day(0, 12), None, ""),
    ("this afternoon", day(0, 12), day(0, 18), None, ""),
    ("what did we say last night about the boat", day(-1, 18), day(0, 6), None, "boat"),
    ("tonight", day(0, 18), day(1, 6), None, ""),
    ("earlier today", day(0), day(1), None, ""),
    ("the day before yesterday", day(-2), day(-1), None, ""),
    ("three days ago", day(-3), day(-2), None, ""),
    ("2 days ago", day(-2), day(-1), None, ""),
    ("last week", day(-13), day(-6), None, ""),
    ("on Monday", day(-2), day(-1), None, ""),
    ("wednesday", day(-7), day(-6), None, ""),  # today is Wednesday: the one before
    ("the first thing", None, None, "first", ""),
    ("What did I say when I first woke up?", None, None, "first", "woke"),
    ("at the beginning", None, None, "first", ""),
    ("when we first met", None, None, "first", "met"),
    ("the first thing you said yesterday", day(-1), day(0), "first", ""),
    ("just now", None, None, "latest", ""),
    ("the last thing about the map", None, None, "latest", "map"),
])
def test_time_window(query, start, end, order, words) -> None:
    window = time_window(query, NOW)
    assert window is not None
    assert (window.start, window.end, window.order, window.words) == (start, end, order, words)


def test_last_night_seen_from_the_small_hours() -> None:
    window = time_window("last night", datetime(1890, 10, 8, 2, 0))  # tonight is still the 7th's night
    assert window is not None and (window.start, window.end) == (day(-2, 18), day(-1, 6))
    tonight = time_window("tonight", datetime(1890, 10, 8, 2, 0))
    assert tonight is not None and (tonight.start, tonight.end) == (day(-1, 18), day(0, 6))


@pytest.mark.parametrize("query", ["the storm", "the first mate", "what about the morning star", "lighthouse", ""])
def test_queries_that_name_no_time(query: str) -> None:
    assert time_window(query, NOW) is None


async def _remember(db, text: str, when: datetime, witnesses=(PLAYER, "ada"), significance: int = 2):
    return await memory.record_memory(db, "chat-1", text, list(witnesses), story_time=when, significance=significance)


@pytest.fixture
async def days(db, chat):
    """Memories over three story days (the chat fixture's clock is unchanged: NOW is passed in)."""
    return [
        await _remember(db, "Ada woke on the beach, salt in her mouth.", day(-2, 6)),
        await _remember(db, "Ada and Bram found the wreck of the boat.", day(-2, 9)),
        await _remember(db, "Bram alone read the captain's log.", day(-2, 10), witnesses=("bram",)),
        await _remember(db, "At supper Ada spoke of the boat.", day(-1, 19)),
        await _remember(db, "Ada lit the lamp against the dark.", day(-1, 21), significance=3),
        await _remember(db, "Ada mended a net.", day(0, 8), significance=1),
        await _remember(db, "Ada saw a sail on the horizon.", day(0, 10)),
    ]


def texts(memories) -> list[str]:
    return [m.text.split(" ", 1)[1] for m in memories]


async def test_the_first_memories_of_the_story_in_order(db, days) -> None:
    first = await recall_by_time(db, "chat-1", "ada", TimeWindow("the first thing", order="first"), limit=2)
    assert [m.memory_id for m in first] == [days[0].memory_id, days[1].memory_id]


async def test_first_with_words_is_the_earliest_match_and_without_a_match_the_first_memories(db, days) -> None:
    boat = await memories_from_time(db, "chat-1", "ada", "when we first talked of the boat", NOW, limit=1)
    assert [m.memory_id for m in boat] == [days[1].memory_id]
    woke = await memories_from_time(db, "chat-1", "ada", "What did I say when I first got up?", NOW, limit=1)
    assert [m.memory_id for m in woke] == [days[0].memory_id]  # "got" matches nothing: the story's first


async def test_a_named_day_or_part_of_it(db, days) -> None:
    yesterday = await memories_from_time(db, "chat-1", "ada", "yesterday", NOW)
    assert [m.memory_id for m in yesterday] == [days[3].memory_id, days[4].memory_id]
    morning = await memories_from_time(db, "chat-1", "ada", "this morning", NOW)
    assert [m.memory_id for m in morning] == [days[5].memory_id, days[6].memory_id]
    last_night = await memories_from_time(db, "chat-1", "ada", "last night", NOW)
    assert [m.memory_id for m in last_night] == [days[3].memory_id, days[4].memory_id]
    assert await memories_from_time(db, "chat-1", "ada", "last week", NOW) == []


async def test_words_pick_within_the_span_and_significance_fills_it(db, days) -> None:
    boat = await memories_from_time(db, "chat-1", "ada", "yesterday, the boat", NOW, limit=1)
    assert [m.memory_id for m in boat] == [days[3].memory_id]  # the lamp is more significant, the boat matches
    plain = await memories_from_time(db, "chat-1", "ada", "yesterday", NOW, limit=1)
    assert [m.memory_id for m in plain] == [days[4].memory_id]  # no words: the most significant


async def test_recall_by_time_sees_only_what_the_character_witnessed(db, days) -> None:
    theirs = await memories_from_time(db, "chat-1", "bram", "three days ago", datetime(1890, 10, 9, 12, 0))
    assert [m.memory_id for m in theirs] == [days[2].memory_id]
    assert days[2].memory_id not in {m.memory_id for m in await memories_from_time(db, "chat-1", "ada", "the first thing", NOW, limit=10)}
    assert await memories_from_time(db, "chat-1", "ada", "the storm", NOW) == []  # no time named


async def test_memory_search_by_time_through_the_engine_shows_when(tmp_path) -> None:
    fake = FakeLLM({"narrate": lambda m: "Aye, " + m[-1]["content"].split("\n")[0].lower(), "skip": "A day passes."})
    engine = await Engine.open(tmp_path / "engine.sqlite3", fake)
    try:
        chat = (await engine.create_chat(owner="@p:hs", host=HOST, starts_at=datetime(2026, 4, 1, 19, 0))).chat_id
        await collect(engine.post_turn(chat, "Where am I? I just woke.", "$1"))
        await collect(engine.post_turn(chat, "Tell me about the maps.", "$2"))
        await engine.skip(chat, timedelta(days=1, hours=1))
        await collect(engine.post_turn(chat, "Good to see you again.", "$3"))

        first = await engine.search_memory(chat, HOST, "the first thing I said", limit=1)
        assert [m.when for m in first] == ["yesterday evening"] and "Where am I?" in first[0].text
        yesterday = await engine.search_memory(chat, "you", "yesterday")
        assert ["Where am I?" in m.text for m in yesterday] == [True, False]
        latest = await engine.search_memory(chat, HOST, "just now", limit=1)
        assert latest[0].when == "a little earlier" and "Good to see you again." in latest[0].text
        words = await engine.search_memory(chat, HOST, "maps")
        assert [m.when for m in words] == ["yesterday evening"]
    finally:
        await engine.close()
