"""The model's own settings reach the server as given: sampler keys, and where the system text goes.

Proven over real HTTP against the strict fake server; with `system_role = False` it answers a
system message with HTTP 400, as a Gemma chat template on vLLM does.
"""

from __future__ import annotations

import pytest

from core.llm import LLMRequestError, OpenAICompatibleClient
from core.llm.structured import generate_json
from core.services.addressee import AddresseeDecision
from tests.core.llm.test_llm_openai_client import FAST_RETRIES

SAMPLING = {"temperature": 0.85, "top_p": 0.92, "min_p": 0.05, "repetition_penalty": 1.08,
            "frequency_penalty": 0.2, "presence_penalty": 0.1, "top_k": 40,
            "chat_template_kwargs": {"enable_thinking": False}}
MESSAGES = [
    {"role": "system", "content": "You are Mira, a lighthouse keeper."},
    {"role": "user", "content": "Hello, Mira."},
    {"role": "assistant", "content": "Evening."},
    {"role": "user", "content": "Is the lamp lit?"},
]


def client(server, **settings) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(base_url=server.base_url, narrative_model="story", classifier_model="judge",
                                  timeout_s=2.0, retry_policy=FAST_RETRIES, **settings)


async def test_sampler_settings_go_to_the_server_as_given(fake_openai) -> None:
    llm = client(fake_openai, sampling=SAMPLING)
    try:
        await llm.generate(MESSAGES, purpose="narrate", max_tokens=300)
        [delta async for delta in llm.stream(MESSAGES, purpose="narrate", max_tokens=300)]
    finally:
        await llm.aclose()
    for request in fake_openai.requests_for(purpose="narrate"):
        body = request.json
        assert {key: body[key] for key in SAMPLING} == SAMPLING
        assert body["max_tokens"] == 300 and body["model"] == "story"


async def test_a_calls_own_value_wins_over_the_sampler_settings(fake_openai) -> None:
    """Structured answers ask for temperature 0; the configured temperature is for prose."""
    fake_openai.add_rule('{"speaker": "mira"}', purpose="addressee")
    llm = client(fake_openai, sampling=SAMPLING)
    try:
        await generate_json(llm, MESSAGES, purpose="addressee", schema=AddresseeDecision,
                            default=AddresseeDecision(speaker="x"), max_tokens=50)
    finally:
        await llm.aclose()
    body = fake_openai.requests_for(purpose="addressee")[0].json
    assert body["temperature"] == 0 and body["min_p"] == 0.05 and body["model"] == "judge"


def test_sampler_settings_cannot_replace_what_rpbot_sends() -> None:
    with pytest.raises(ValueError, match="messages"):
        OpenAICompatibleClient(base_url="http://127.0.0.1:1/v1", narrative_model="m", sampling={"messages": []})


async def test_a_template_without_a_system_role_gets_the_system_text_in_the_first_user_message(fake_openai) -> None:
    fake_openai.system_role = False
    plain = client(fake_openai)
    try:
        with pytest.raises(LLMRequestError, match="System role not supported"):
            await plain.generate(MESSAGES, purpose="narrate")
    finally:
        await plain.aclose()
    fake_openai.expect_rejections = True

    folded = client(fake_openai, system_placement="first_user")
    try:
        assert await folded.generate(MESSAGES, purpose="narrate") == "Echo: Is the lamp lit?"
    finally:
        await folded.aclose()
    sent = fake_openai.requests_for(purpose="narrate")[-1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "You are Mira, a lighthouse keeper.\n\nHello, Mira."
