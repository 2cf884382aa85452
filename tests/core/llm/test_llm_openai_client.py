"""OpenAICompatibleClient over real HTTP against the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest
from pydantic import BaseModel

from core.llm import (
    LLMClient,
    LLMConnectionError,
    LLMRateLimitedError,
    LLMRequestError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    LLMTruncatedError,
    OpenAICompatibleClient,
    RetryPolicy,
)
from tests.support.fake_openai import Reply

FAST_RETRIES = RetryPolicy(
    max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05, max_retry_after_s=2
)
MESSAGES = [
    {"role": "system", "content": "Character: Mira"},
    {"role": "user", "content": "Hello, Mira."},
]


def make_client(server, **overrides) -> OpenAICompatibleClient:
    settings = dict(
        base_url=server.base_url,
        api_key="sk-test",
        narrative_model="narrator-1",
        classifier_model="classifier-1",
        timeout_s=2.0,
        retry_policy=FAST_RETRIES,
    )
    settings.update(overrides)
    return OpenAICompatibleClient(**settings)


@pytest.fixture
async def client(fake_openai):
    llm = make_client(fake_openai)
    yield llm
    await llm.aclose()


async def collect(llm, purpose="narrate", **kwargs) -> list[str]:
    return [delta async for delta in llm.stream(MESSAGES, purpose=purpose, **kwargs)]


async def test_streaming_happy_path(client, fake_openai):
    fake_openai.add_rule(Reply(text="Mira smiles at you warmly.", chunk_size=5))
    deltas = await collect(client)
    assert "".join(deltas) == "Mira smiles at you warmly."
    assert len(deltas) == 6
    (request,) = fake_openai.completion_requests
    assert request.is_stream and request.purpose == "narrate"
    assert request.model == "narrator-1"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.messages == MESSAGES
    assert isinstance(client, LLMClient)


async def test_non_streaming_with_classifier_model_and_options(client, fake_openai):
    text = await client.generate(
        MESSAGES, purpose="addressee", role="classifier", max_tokens=20, temperature=0.1
    )
    assert text == "Echo: Hello, Mira."
    (request,) = fake_openai.requests_for(purpose="addressee")
    assert not request.is_stream
    assert request.model == "classifier-1"
    assert (request.json["max_tokens"], request.json["temperature"]) == (20, 0.1)
    assert "response_format" not in request.json


async def test_no_authorization_header_without_api_key(fake_openai):
    async with make_client(fake_openai, api_key="") as llm:
        await llm.generate(MESSAGES, purpose="narrate")
    assert not any(k.lower() == "authorization" for k in fake_openai.requests[0].headers)


async def test_hanging_server_times_out(fake_openai):
    fake_openai.add_rule(Reply(hang=True))
    async with make_client(fake_openai, timeout_s=0.3) as llm:
        started = time.monotonic()
        with pytest.raises(LLMTimeoutError):
            await llm.generate(MESSAGES, purpose="narrate")
        with pytest.raises(LLMTimeoutError):
            await collect(llm)
    assert time.monotonic() - started < 2.5
    assert len(fake_openai.completion_requests) == 2  # timeouts are not retried


async def test_stream_stalling_after_first_token_times_out(fake_openai):
    fake_openai.add_rule(Reply(text="abcdefgh", chunk_size=2, stall=True, fail_after_chunks=2))
    received: list[str] = []
    async with make_client(fake_openai, timeout_s=0.3) as llm:
        with pytest.raises(LLMTimeoutError):
            async for delta in llm.stream(MESSAGES, purpose="narrate"):
                received.append(delta)
    assert received == ["ab", "cd"]


async def test_429_honours_retry_after_then_succeeds(client, fake_openai):
    fake_openai.add_rule(Reply(text="finally", status=429, retry_after=1, fail_times=1))
    assert await client.generate(MESSAGES, purpose="narrate") == "finally"
    first, second = fake_openai.completion_requests
    assert second.received_monotonic - first.received_monotonic >= 0.95


async def test_retry_after_is_capped(fake_openai):
    fake_openai.add_rule(Reply(text="ok", status=429, retry_after=120, fail_times=1))
    policy = RetryPolicy(max_attempts=2, backoff_base_s=0.01, max_retry_after_s=0.2)
    async with make_client(fake_openai, retry_policy=policy) as llm:
        started = time.monotonic()
        assert await llm.generate(MESSAGES, purpose="narrate") == "ok"
    assert time.monotonic() - started < 1.5


async def test_429_forever_raises_rate_limited(client, fake_openai):
    fake_openai.add_rule(Reply(status=429, retry_after=0))
    with pytest.raises(LLMRateLimitedError) as caught:
        await client.generate(MESSAGES, purpose="narrate")
    assert caught.value.retry_after_s == 0
    assert len(fake_openai.completion_requests) == FAST_RETRIES.max_attempts


async def test_500_then_success(client, fake_openai):
    fake_openai.add_rule(Reply(text="recovered", status=500, fail_times=2))
    assert await client.generate(MESSAGES, purpose="narrate") == "recovered"
    assert len(fake_openai.completion_requests) == 3


async def test_500_forever_raises_server_error_after_bounded_retries(client, fake_openai):
    fake_openai.add_rule(Reply(status=502, error_body={"error": {"message": "upstream down"}}))
    with pytest.raises(LLMServerError) as caught:
        await collect(client)
    assert caught.value.status_code == 502
    assert "upstream down" in str(caught.value)
    assert len(fake_openai.completion_requests) == FAST_RETRIES.max_attempts


async def test_stream_retries_before_first_token(client, fake_openai):
    fake_openai.add_rule(Reply(text="second time lucky", status=503, fail_times=1))
    assert "".join(await collect(client)) == "second time lucky"
    assert len(fake_openai.completion_requests) == 2


async def test_stream_is_not_retried_after_first_token(client, fake_openai):
    fake_openai.add_rule(
        Reply(text="abcdefgh", chunk_size=2, truncate=True, fail_after_chunks=2, fail_times=1)
    )
    received: list[str] = []
    with pytest.raises(LLMTruncatedError) as caught:
        async for delta in client.stream(MESSAGES, purpose="narrate"):
            received.append(delta)
    assert received == ["ab", "cd"]
    assert caught.value.partial_text == "abcd"
    assert len(fake_openai.completion_requests) == 1


async def test_client_errors_are_not_retried(client, fake_openai):
    fake_openai.add_rule(Reply(status=401, error_body={"error": {"message": "bad key"}}))
    with pytest.raises(LLMRequestError) as caught:
        await client.generate(MESSAGES, purpose="narrate")
    assert caught.value.status_code == 401
    assert len(fake_openai.completion_requests) == 1


async def test_unreachable_server_raises_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = OpenAICompatibleClient(
        base_url=f"http://127.0.0.1:{port}/v1", narrative_model="m", retry_policy=FAST_RETRIES
    )
    async with llm:
        with pytest.raises(LLMConnectionError):
            await llm.generate(MESSAGES, purpose="narrate")
        with pytest.raises(LLMConnectionError):
            await collect(llm)


async def test_error_object_mid_stream(client, fake_openai):
    fake_openai.add_rule(
        Reply(text="abcdefgh", chunk_size=2, stream_error={"message": "overloaded", "code": 502})
    )
    with pytest.raises(LLMStreamError) as caught:
        await collect(client)
    assert "overloaded" in str(caught.value)
    assert caught.value.partial_text == "ab"
    assert not isinstance(caught.value, LLMTruncatedError)


async def test_vllm_error_mid_stream(client, fake_openai):
    fake_openai.add_rule(Reply(text="abcdefgh", chunk_size=2, vllm_stream_error="context too long"))
    with pytest.raises(LLMStreamError, match="context too long"):
        await collect(client)


async def test_malformed_sse_data_raises_stream_error(client, fake_openai):
    fake_openai.add_rule(Reply(text="abcdefgh", chunk_size=2, malformed_line=True))
    with pytest.raises(LLMStreamError, match="malformed"):
        await collect(client)


async def test_comment_lines_are_skipped(client, fake_openai):
    fake_openai.add_rule(Reply(text="kept alive", chunk_size=3, keepalive_comments=True))
    assert "".join(await collect(client)) == "kept alive"


async def test_clean_end_without_done_or_finish_reason_is_truncation(client, fake_openai):
    fake_openai.add_rule(Reply(text="half a thou", finish_reason=None, send_done=False))
    with pytest.raises(LLMTruncatedError) as caught:
        await collect(client)
    assert caught.value.partial_text == "half a thou"


async def test_finish_reason_without_done_is_complete(client, fake_openai):
    fake_openai.add_rule(Reply(text="complete", send_done=False))
    assert "".join(await collect(client)) == "complete"


async def _wait_until(predicate, within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_closing_the_stream_closes_the_connection(client, fake_openai):
    fake_openai.add_rule(Reply(text="word " * 200, chunk_size=5, chunk_delay_s=0.05))
    stream = client.stream(MESSAGES, purpose="narrate")
    assert await anext(stream) == "word "
    await stream.aclose()
    request = fake_openai.completion_requests[0]
    assert await _wait_until(lambda: request.client_disconnected)


async def test_cancelling_the_task_closes_the_connection(client, fake_openai):
    fake_openai.add_rule(Reply(text="word " * 200, chunk_size=5, chunk_delay_s=0.05))
    received: list[str] = []

    async def consume() -> None:
        async for delta in client.stream(MESSAGES, purpose="narrate"):
            received.append(delta)

    task = asyncio.create_task(consume())
    assert await _wait_until(lambda: len(received) >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    request = fake_openai.completion_requests[0]
    assert await _wait_until(lambda: request.client_disconnected)
    assert len(received) < 200


class Verdict(BaseModel):
    speaker: str
    confidence: float = 0.5


async def test_response_format_is_sent_for_a_schema(client, fake_openai):
    fake_openai.add_rule(Reply(text='{"speaker": "mira"}'), has_response_format=True)
    text = await client.generate(
        MESSAGES, purpose="addressee", role="classifier", response_schema=Verdict
    )
    assert text == '{"speaker": "mira"}'
    response_format = fake_openai.completion_requests[0].response_format
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Verdict"
    assert response_format["json_schema"]["schema"]["required"] == ["speaker"]


async def test_rejected_response_format_is_dropped(client, fake_openai):
    fake_openai.add_rule(
        Reply(status=400, error_body={"error": {"message": "response_format unsupported"}}),
        has_response_format=True,
    )
    fake_openai.add_rule(Reply(text='Sure! {"speaker": "mira"}'))
    text = await client.generate(MESSAGES, purpose="addressee", response_schema=Verdict)
    assert text == 'Sure! {"speaker": "mira"}'
    await client.generate(MESSAGES, purpose="addressee", response_schema=Verdict)
    sent = [r.response_format is not None for r in fake_openai.completion_requests]
    assert sent == [True, False, False]


async def test_list_models(client, fake_openai):
    fake_openai.models = ["narrator-1", "classifier-1"]
    assert await client.list_models() == ["narrator-1", "classifier-1"]


def _client_answering(content_type: str, body: str) -> OpenAICompatibleClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, text=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return OpenAICompatibleClient(
        base_url="http://provider/v1", narrative_model="m", http_client=http
    )


async def test_sse_error_event_raises_stream_error():
    body = 'event: error\ndata: {"message": "nope"}\n\n'
    async with _client_answering("text/event-stream", body) as llm:
        with pytest.raises(LLMStreamError, match="nope"):
            await collect(llm)


async def test_plain_json_answer_to_a_stream_request_is_accepted():
    completion = {"choices": [{"message": {"role": "assistant", "content": "all at once"}}]}
    async with _client_answering("application/json", json.dumps(completion)) as llm:
        assert await collect(llm) == ["all at once"]
