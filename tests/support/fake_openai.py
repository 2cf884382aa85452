"""A real HTTP server speaking the OpenAI chat-completions API, scripted per test.

It runs in its own thread with its own asyncio loop (aiohttp), on 127.0.0.1 and a free port,
so sync tests, async tests and a bot running as a subprocess can all call it.

    with FakeOpenAIServer() as server:               # or the `fake_openai` pytest fixture
        server.add_rule(Reply(text="Mira smiles."), purpose="narrate")
        server.add_rule(Reply(text='{"speaker": "mira"}'), has_response_format=True)
        server.add_rule(Reply(status=429, retry_after=1, fail_times=1), model="slow-model")
        client = OpenAICompatibleClient(base_url=server.base_url, ...)
        ...
        assert server.requests_for(purpose="narrate")[0].last_user_message == "hello"

Endpoints: `POST /v1/chat/completions` (streaming SSE or not, as the body asks) and
`GET /v1/models`. Every request is recorded (`requests`, `requests_for(...)`).

Which reply a request gets: the router function if one is set and it returns a Reply (or a
str), else the first matching rule (a rule with `times` is used up after that many requests),
else `default_reply`; a Reply without `text` echoes the last user message, without the notes
a reply prompt adds after the player's line ("Echo: ...").

A Reply scripts one behaviour; its failures (status, hang, mid-stream faults) happen on every
request it serves, or only on the first `fail_times` ones, after which it succeeds normally.
The purpose of a request is read from the `X-RPBot-Purpose` header rpbot's client sends.

The server is strict by default, as vLLM is with a strict chat template: a chat request whose
messages are not one system message followed by user / assistant strictly alternating (starting
with user) gets HTTP 400 before any rule is consulted, and is kept in `rejected`.  The
`fake_openai` fixture fails the test if any request was rejected (unless the test set
`expect_rejections`).  `strict = False` turns the check off.  `system_role = False` makes it a
server whose chat template has no system role (Gemma's): a system message gets HTTP 400 too.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from core.llm.fake import cut_at_stop
from core.llm.roles import role_order_error
from tests.support.fake_openai_models import PURPOSE_HEADER, RecordedRequest, Reply, Rule

__all__ = ["FakeOpenAIServer", "PURPOSE_HEADER", "RecordedRequest", "Reply", "Rule", "fake_openai"]
_WRITE_ERRORS = (ConnectionResetError, ConnectionError, RuntimeError)


Router = Callable[[RecordedRequest], "Reply | str | None"]


class FakeOpenAIServer:
    """The fake server; `start()`/`stop()` or use it as a context manager."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.models: list[str] = ["fake-narrative", "fake-classifier"]
        self.default_reply = Reply()
        self.router: Router | None = None
        self._rules: list[Rule] = []
        self.strict = True
        self.system_role = True  # False: refuse system messages, as a template without a system role does
        self.expect_rejections = False
        self.rejected: list[tuple[RecordedRequest, str]] = []  # (request, why) refused for role order
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ending in /v1 (what a client's `base_url` takes)."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("fake OpenAI server failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # noqa: BLE001  (the server thread hands whatever stopped it to start(), which raises it)
            self._startup_error = error
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            await runner.cleanup()

    # -- scripting and inspection ----------------------------------------------------------

    def add_rule(self, reply: Reply | str | None = None, **conditions: Any) -> Rule:
        """Append a rule (conditions are `Rule` fields: purpose, model, system_contains, ...)."""
        if not isinstance(reply, Reply):
            reply = Reply(text=reply)
        rule = Rule(reply=reply, **conditions)
        with self._lock:
            self._rules.append(rule)
        return rule

    def reset(self) -> None:
        """Forget rules, router and recorded requests."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()
            self.rejected.clear()
        self.router = None
        self.default_reply = Reply()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(
        self, *, purpose: str | None = None, path: str | None = None, model: str | None = None
    ) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if (purpose is None or r.purpose == purpose)
            and (path is None or r.path == path)
            and (model is None or r.model == model)
        ]

    @property
    def completion_requests(self) -> list[RecordedRequest]:
        return self.requests_for(path="/v1/chat/completions")

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} requests, got {len(self.requests)}")
            time.sleep(0.01)
        return self.requests

    # -- handlers ------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = CIMultiDict(request.headers)
        record = RecordedRequest(
            request.method,
            request.path,
            headers,
            body,
            raw,
            time.time(),
            time.monotonic(),
            purpose=headers.get(PURPOSE_HEADER),
        )
        with self._lock:
            self._requests.append(record)
        return record

    def _choose_reply(self, record: RecordedRequest) -> Reply:
        if self.router is not None:
            routed = self.router(record)
            if routed is not None:
                return routed if isinstance(routed, Reply) else Reply(text=routed)
        with self._lock:
            for rule in self._rules:
                if rule.matches(record):
                    rule.used += 1
                    return rule.reply
        return self.default_reply

    async def _list_models(self, request: web.Request) -> web.Response:
        await self._record(request)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        problem = role_order_error(record.messages) if self.strict else None
        if problem is None and not self.system_role and any(m.get("role") == "system" for m in record.messages):
            problem = "System role not supported"
        if problem is not None:
            with self._lock:
                self.rejected.append((record, problem))
            error = {"object": "error", "message": problem, "type": "BadRequestError", "param": None, "code": 400}
            return web.json_response(error, status=400)
        try:
            reply = self._choose_reply(record)
            failing = reply.take_failure_slot()
            if failing and reply.hang:
                await self._pause(request, record, math.inf)
                return web.Response(status=504)
            if not await self._pause(request, record, reply.first_token_delay_s):
                return web.Response(status=499)
            if failing and reply.status >= 400:
                return _error_response(reply)
            text = cut_at_stop(reply.render_text(record), record.json.get("stop"))
            if not record.is_stream:
                message = {"role": "assistant", "content": text}
                finish_reason = reply.finish_reason or "stop"
                choice = {"index": 0, "message": message, "finish_reason": finish_reason}
                return web.json_response(_completion_object(record, "chat.completion", choice))
            return await self._stream(request, record, reply, text, failing)
        except asyncio.CancelledError:
            record.disconnected.set()
            raise

    async def _stream(
        self, request: web.Request, record: RecordedRequest, reply: Reply, text: str, failing: bool
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        size = max(1, reply.chunk_size)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        fail_at = (
            min(reply.fail_after_chunks, len(pieces)) if failing and reply.fails_mid_stream else -1
        )

        async def send(line: str) -> bool:
            try:
                await response.write(line.encode())
                return True
            except _WRITE_ERRORS:
                record.disconnected.set()
                return False

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            body = _completion_object(record, "chat.completion.chunk", choice)
            return f"data: {json.dumps(body)}\n\n"

        if not await send(chunk({"role": "assistant", "content": ""})):
            return response
        for index in range(len(pieces) + 1):
            if index == fail_at:
                if await self._fail_mid_stream(request, record, reply, send):
                    return response
            if index == len(pieces):
                break
            if index and not await self._pause(request, record, reply.chunk_delay_s):
                return response
            if reply.keepalive_comments and not await send(": keep-alive\n\n"):
                return response
            if not await send(chunk({"content": pieces[index]})):
                return response
        if reply.finish_reason is not None and not await send(chunk({}, reply.finish_reason)):
            return response
        if reply.send_done and not await send("data: [DONE]\n\n"):
            return response
        await response.write_eof()
        return response

    async def _fail_mid_stream(
        self, request: web.Request, record: RecordedRequest, reply: Reply, send: Callable
    ) -> bool:
        """Perform the scripted mid-stream failure; True when the response is over."""
        if reply.stream_error is not None:
            await send(f"data: {json.dumps({'error': reply.stream_error})}\n\n")
            return True
        if reply.vllm_stream_error is not None:
            error = dict(object="error", message=reply.vllm_stream_error, type="BadRequestError")
            await send(f"data: {json.dumps(error)}\n\n")
            await send("data: [DONE]\n\n")
            return True
        if reply.malformed_line:
            await send('data: {"choices": [{"delta": {"content": "broken\n\n')
            return False
        if reply.truncate:
            if request.transport is not None:
                request.transport.close()
            record.disconnected.set()
            raise asyncio.CancelledError  # abandon the response; aiohttp must not finish it
        if reply.stall:
            await self._pause(request, record, math.inf)
            return True
        return False

    async def _pause(self, request: web.Request, record: RecordedRequest, seconds: float) -> bool:
        """Sleep up to `seconds`; False if the client disconnected or the server is stopping."""
        deadline = time.monotonic() + seconds
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                record.disconnected.set()
                return False
            if self._stopping.is_set():
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            await asyncio.sleep(min(0.01, remaining))


def _completion_object(record: RecordedRequest, kind: str, choice: dict[str, Any]) -> dict:
    """A `chat.completion` or `chat.completion.chunk` object with one choice."""
    created, model = int(record.received_at), record.model or "fake"
    return dict(id="chatcmpl-fake", object=kind, created=created, model=model, choices=[choice])


def _error_response(reply: Reply) -> web.Response:
    headers = {}
    if reply.retry_after is not None:
        headers["Retry-After"] = str(reply.retry_after)
    body = reply.error_body
    if body is None:
        body = {"error": {"message": f"fake error {reply.status}", "code": reply.status}}
    if isinstance(body, str):
        return web.Response(status=reply.status, text=body, headers=headers)
    return web.json_response(body, status=reply.status, headers=headers)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAIServer]:
    """A started FakeOpenAIServer, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server
        if server.rejected and not server.expect_rejections:
            request, why = server.rejected[0]
            pytest.fail(f"the fake model server refused {len(server.rejected)} request(s) for role order: "
                        f"{why}; purpose {request.purpose!r}, roles {[m.get('role') for m in request.messages]}")
