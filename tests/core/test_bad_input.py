"""Bad input gets a typed error (core.errors) and writes nothing.

Each case once crashed with an untyped error deep in the engine (a pydantic serialization
error, an OverflowError, a RecursionError) or was taken as it stood (a 100 KB line).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from core.engine import Engine
from core.errors import CardImportError, InvalidCastError, InvalidInputError, InvalidTimeError, RpbotError
from core.llm import FakeLLM
from core.text_input import MAX_LINE_CHARS
from tests.core.conftest import row_counts

HOST, GUEST = "wren-halloway", "odile-marchetti"


@pytest.fixture
async def story(open_engine):
    engine: Engine = await open_engine(FakeLLM(routes={"narrate": "The lamp hums.", "skip": "Time passes."}))
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    async for _ in engine.post_turn(chat.chat_id, "Hello.", "$1"):
        pass
    return engine, chat.chat_id


async def drain(updates) -> None:
    async for _ in updates:
        pass


@pytest.mark.parametrize(
    "line, says",
    [("\ud800", "cannot be read"), ("", "empty"), ("   \n\t", "empty"), ("x" * (MAX_LINE_CHARS + 1), f"{MAX_LINE_CHARS:,}")],
    ids=["lone-surrogate", "empty", "blank", "too-long"],
)
async def test_a_bad_line_is_refused_with_the_reason_and_nothing_is_written(story, line: str, says: str) -> None:
    engine, chat_id = story
    before = await row_counts(engine.db)
    with pytest.raises(InvalidInputError, match=says):
        await drain(engine.post_turn(chat_id, line, "$bad"))
    assert await row_counts(engine.db) == before
    # The same source id may still carry a good line afterwards.
    await drain(engine.post_turn(chat_id, "x" * MAX_LINE_CHARS, "$bad"))


async def test_an_absurd_skip_is_refused(story) -> None:
    engine, chat_id = story
    before = await row_counts(engine.db)
    with pytest.raises(InvalidTimeError, match="at most"):
        await engine.skip(chat_id, timedelta(days=3_000_000))
    with pytest.raises(InvalidTimeError):
        await engine.jump(chat_id, datetime(9999, 12, 31, 23, 0))
    assert await row_counts(engine.db) == before


async def test_other_text_arguments_are_checked_too(story) -> None:
    engine, chat_id = story
    before = await row_counts(engine.db)
    with pytest.raises(InvalidInputError):
        await engine.plan_event(chat_id, "a fair \ud800", datetime(2026, 5, 1))
    with pytest.raises(InvalidInputError):
        await drain(engine.meanwhile(chat_id, HOST, GUEST, "a quarrel \udfff"))
    with pytest.raises(InvalidInputError):
        await engine.search_memory(chat_id, HOST, "lamp \ud800")
    assert await row_counts(engine.db) == before


async def test_host_and_guest_must_differ(open_engine) -> None:
    engine = await open_engine(FakeLLM(routes={}))
    before = await row_counts(engine.db)
    with pytest.raises(InvalidCastError):
        await engine.create_chat(owner="@p:hs", host=HOST, guest=HOST)
    assert await row_counts(engine.db) == before


def nested(depth: int) -> str:
    return '{"spec": "chara_card_v2", "data": {"name": "Deep", "extensions": ' + "[" * depth + "]" * depth + "}}"


@pytest.mark.parametrize(
    "card",
    [
        nested(100_000),
        nested(5_000),
        nested(500),
        json.dumps({"spec": "chara_card_v2", "data": {"name": "Nul\x00l"}}),
        json.dumps({"spec": "chara_card_v2", "data": {"name": "Wren", "description": "\ud800"}}),
    ],
    ids=["nested-deep", "nested", "nested-500", "nul-in-name", "lone-surrogate"],
)
async def test_a_bad_card_is_refused_and_nothing_is_written(open_engine, card: str) -> None:
    engine = await open_engine(FakeLLM(routes={}))
    before = await row_counts(engine.db)
    for data in (card, card.encode("utf-8", "surrogatepass")):
        with pytest.raises(CardImportError):
            await engine.import_character(data)
    assert await row_counts(engine.db) == before
    assert issubclass(CardImportError, RpbotError)
