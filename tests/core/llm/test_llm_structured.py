"""Tolerant JSON extraction and validated classifier answers with safe defaults."""

from __future__ import annotations

import logging
from typing import Literal

import pytest
from pydantic import BaseModel

from core.llm import (
    FakeLLM,
    LLMServerError,
    OpenAICompatibleClient,
    RetryPolicy,
    extract_json,
    generate_json,
    parse_structured,
    placeholder_instance,
)
from tests.support.fake_openai import Reply


class Addressee(BaseModel):
    speaker: Literal["host", "guest"]
    skip_intent: bool = False


SAFE = Addressee(speaker="host")
MESSAGES = [{"role": "user", "content": "Who answers?"}]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('Here you go:\n```\n{"a": [1, 2]}\n```\nAnything else?', {"a": [1, 2]}),
        (
            'Sure! The answer is {"a": "x}y", "b": {"c": 2}} as requested.',
            {"a": "x}y", "b": {"c": 2}},
        ),
        ('<think>maybe {"a": 0}? no</think>{"a": 2}', {"a": 2}),
        ('{broken {"a": 3}', {"a": 3}),
        ("no json at all", None),
        ("", None),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


def test_parse_structured():
    assert parse_structured('ok: {"speaker": "guest"}', Addressee) == Addressee(speaker="guest")
    assert parse_structured('{"speaker": "nobody"}', Addressee) is None


async def test_generate_json_accepts_fenced_output():
    llm = FakeLLM({"addressee": '```json\n{"speaker": "guest", "skip_intent": true}\n```'})
    result = await generate_json(llm, MESSAGES, purpose="addressee", schema=Addressee, default=SAFE)
    assert result == Addressee(speaker="guest", skip_intent=True)
    (call,) = llm.calls
    assert call.role == "classifier" and call.response_schema is Addressee


@pytest.mark.parametrize("output", ["I think the host should answer.", '{"speaker": "the cat"}'])
async def test_invalid_classifier_output_gives_default_and_logs(output, caplog):
    llm = FakeLLM({"addressee": output})
    with caplog.at_level(logging.WARNING, logger="core.llm.structured"):
        result = await generate_json(
            llm, MESSAGES, purpose="addressee", schema=Addressee, default=SAFE
        )
    assert result is SAFE
    assert any("addressee" in record.getMessage() for record in caplog.records)


async def test_llm_errors_raise_unless_asked_for_the_default():
    llm = FakeLLM(errors={"addressee": LLMServerError("down", status_code=503)})
    with pytest.raises(LLMServerError):
        await generate_json(llm, MESSAGES, purpose="addressee", schema=Addressee, default=SAFE)
    result = await generate_json(
        llm,
        MESSAGES,
        purpose="addressee",
        schema=Addressee,
        default=SAFE,
        default_on_llm_error=True,
    )
    assert result is SAFE


async def test_generate_json_over_http_with_prose_around_json(fake_openai):
    fake_openai.add_rule(
        Reply(text='Of course.\n```json\n{"speaker": "guest"}\n```'), has_response_format=True
    )
    llm = OpenAICompatibleClient(
        base_url=fake_openai.base_url,
        narrative_model="n",
        classifier_model="c",
        retry_policy=RetryPolicy(max_attempts=1),
    )
    async with llm:
        result = await generate_json(
            llm, MESSAGES, purpose="addressee", schema=Addressee, default=SAFE
        )
    assert result == Addressee(speaker="guest")
    assert fake_openai.completion_requests[0].model == "c"


def test_placeholder_instance_is_valid():
    class Nested(BaseModel):
        names: list[str]
        score: int
        mood: Literal["calm", "angry"]
        note: str | None
        child: Addressee

    value = placeholder_instance(Nested)
    assert Nested.model_validate(value.model_dump()) == value
    assert value.mood == "calm" and value.child.speaker == "host"
