"""The fake OpenAI-compatible server does what its docstring promises (checked with raw httpx)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.fake_openai import FakeOpenAIServer, Reply

CHAT = "/chat/completions"


def _body(text: str = "hello", *, stream: bool = False, **extra) -> dict:
    return {
        "model": "m1",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "Character: Mira"},
            {"role": "user", "content": text},
        ],
        **extra,
    }


def _sse_lines(server: FakeOpenAIServer, body: dict, **headers) -> list[str]:
    with httpx.Client(base_url=server.base_url, timeout=5) as http:
        with http.stream("POST", CHAT, json=body, headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            return [line for line in response.iter_lines() if line]


def _content_of(lines: list[str]) -> str:
    text = ""
    for line in lines:
        if line.startswith("data: {") and '"choices"' in line:
            try:
                text += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            except ValueError:
                pass
    return text


def test_non_streaming_default_echo_and_recording(fake_openai):
    response = httpx.post(
        fake_openai.base_url + CHAT, json=_body("hi there"), headers={"X-RPBot-Purpose": "narrate"}
    )
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "Echo: hi there"
    (recorded,) = fake_openai.requests
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.purpose == "narrate"
    assert recorded.model == "m1"
    assert recorded.system_prompt == "Character: Mira"
    assert recorded.last_user_message == "hi there"
    assert recorded.received_at <= time.time()
    assert fake_openai.requests_for(purpose="narrate") == [recorded]
    assert fake_openai.requests_for(purpose="other") == []


def test_streaming_uses_openai_delta_format(fake_openai):
    fake_openai.add_rule(Reply(text="abcdefghij", chunk_size=4))
    lines = _sse_lines(fake_openai, _body(stream=True))
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["abcd", "efgh", "ij"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_rules_match_on_request_content_and_router_wins(fake_openai):
    fake_openai.add_rule("by model", model="special")
    fake_openai.add_rule("by system", system_contains="Mira")
    fake_openai.add_rule("structured", has_response_format=True)
    once = fake_openai.add_rule("only once", user_contains="once", times=1)

    def post(body: dict) -> str:
        return httpx.post(fake_openai.base_url + CHAT, json=body).json()["choices"][0]["message"][
            "content"
        ]

    assert post({**_body(), "model": "special"}) == "by model"
    assert post(_body()) == "by system"
    plain = {"model": "x", "messages": [{"role": "user", "content": "q"}]}
    assert post({**plain, "response_format": {"type": "json_object"}}) == "structured"
    assert post({**plain, "messages": [{"role": "user", "content": "once"}]}) == "only once"
    assert post({**plain, "messages": [{"role": "user", "content": "once"}]}) == "Echo: once"
    assert once.used == 1
    fake_openai.router = lambda request: "routed" if request.model == "x" else None
    assert post(plain) == "routed"
    assert post(_body()) == "by system"


def test_error_status_with_retry_after_then_success(fake_openai):
    fake_openai.add_rule(
        Reply(
            text="ok",
            status=429,
            retry_after=3,
            fail_times=2,
            error_body={"error": {"message": "slow down"}},
        )
    )
    first = httpx.post(fake_openai.base_url + CHAT, json=_body())
    assert first.status_code == 429
    assert first.headers["retry-after"] == "3"
    assert first.json() == {"error": {"message": "slow down"}}
    assert httpx.post(fake_openai.base_url + CHAT, json=_body()).status_code == 429
    third = httpx.post(fake_openai.base_url + CHAT, json=_body())
    assert third.status_code == 200 and third.json()["choices"][0]["message"]["content"] == "ok"


def test_mid_stream_error_objects(fake_openai):
    fake_openai.add_rule(
        Reply(text="abcdefgh", chunk_size=2, stream_error={"message": "boom"}),
        user_contains="openai",
    )
    fake_openai.add_rule(
        Reply(text="abcdefgh", chunk_size=2, vllm_stream_error="bad"), user_contains="vllm"
    )
    lines = _sse_lines(fake_openai, _body("openai", stream=True))
    assert _content_of(lines) == "ab"
    assert json.loads(lines[-1][6:]) == {"error": {"message": "boom"}}
    lines = _sse_lines(fake_openai, _body("vllm", stream=True))
    assert json.loads(lines[-2][6:])["object"] == "error"
    assert lines[-1] == "data: [DONE]"


def test_keepalive_comments_and_malformed_line(fake_openai):
    fake_openai.add_rule(
        Reply(text="abcd", chunk_size=2, keepalive_comments=True), user_contains="ka"
    )
    fake_openai.add_rule(Reply(text="abcd", chunk_size=2, malformed_line=True), user_contains="bad")
    lines = _sse_lines(fake_openai, _body("ka", stream=True))
    assert lines.count(": keep-alive") == 2
    assert _content_of(lines) == "abcd"
    lines = _sse_lines(fake_openai, _body("bad", stream=True))
    broken = [line for line in lines if line.startswith("data: ") and line != "data: [DONE]"]
    assert any(_not_json(line[6:]) for line in broken)


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def test_truncated_stream_drops_the_connection(fake_openai):
    fake_openai.add_rule(Reply(text="abcdefgh", chunk_size=2, truncate=True, fail_after_chunks=2))
    with pytest.raises(httpx.RemoteProtocolError):
        _sse_lines(fake_openai, _body(stream=True))


def test_clean_end_without_done_or_finish_reason(fake_openai):
    fake_openai.add_rule(Reply(text="abcd", finish_reason=None, send_done=False))
    lines = _sse_lines(fake_openai, _body(stream=True))
    assert "data: [DONE]" not in lines
    assert all('"finish_reason": null' in line for line in lines)


def test_delays_are_applied(fake_openai):
    fake_openai.add_rule(
        Reply(text="abcdef", chunk_size=2, first_token_delay_s=0.3, chunk_delay_s=0.1)
    )
    started = time.monotonic()
    _sse_lines(fake_openai, _body(stream=True))
    assert time.monotonic() - started >= 0.5


def test_hang_until_client_gives_up_and_disconnect_is_seen(fake_openai):
    fake_openai.add_rule(Reply(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(fake_openai.base_url + CHAT, json=_body(), timeout=0.3)
    assert fake_openai.requests[0].wait_disconnected(3)


def test_models_endpoint(fake_openai):
    fake_openai.models = ["alpha", "beta"]
    data = httpx.get(fake_openai.base_url + "/models").json()
    assert [m["id"] for m in data["data"]] == ["alpha", "beta"]
    assert fake_openai.requests[0].path == "/v1/models"


def test_stop_is_prompt_even_with_a_hanging_request():
    server = FakeOpenAIServer().start()
    server.add_rule(Reply(hang=True))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + CHAT, json=_body(), timeout=0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3


def test_strict_server_refuses_roles_out_of_order_like_vllm(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.expect_rejections = True
    bad = [
        {"role": "system", "content": "s"},
        {"role": "assistant", "content": "greeting"},
        {"role": "user", "content": "hi"},
    ]
    response = httpx.post(f"{fake_openai.base_url}/chat/completions", json={"model": "m", "messages": bad})
    assert response.status_code == 400
    assert "alternate" in response.json()["message"]
    two_users = [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert httpx.post(f"{fake_openai.base_url}/chat/completions",
                      json={"model": "m", "messages": two_users}).status_code == 400
    good = [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    assert httpx.post(f"{fake_openai.base_url}/chat/completions",
                      json={"model": "m", "messages": good}).status_code == 200
    assert len(fake_openai.rejected) == 2
