"""An `LLMClient` for any OpenAI-compatible chat-completions endpoint, over httpx.

Works with Featherless, OpenRouter, Ollama (`/v1`), the llama.cpp server and vLLM: they all
speak `POST {base_url}/chat/completions`, streaming as server-sent events.

Behaviour callers can rely on:
- Timeouts: `timeout_s` bounds the wait for the response and for each next stream chunk
  (connect is capped at 10 s). Exceeding it raises `LLMTimeoutError`; timeouts are not retried.
- Retries (see `core.llm.retry`): connection failures, 429 and 5xx are retried with backoff,
  honouring Retry-After (capped). A stream is retried only until its first text delta exists;
  after that any failure is raised, never papered over with a second generation.
- Streams: SSE framing by httpx-sse (comment lines such as `: keep-alive` are skipped).
  An error object in the stream (`{"error": {...}}` or vLLM's `{"object": "error", ...}`) or
  data that is not JSON raises `LLMStreamError`. A stream that ends, or whose connection drops,
  without `[DONE]` and without a finish_reason raises `LLMTruncatedError` (a `LLMStreamError`)
  whose `partial_text` holds the text received; deltas already yielded stay yielded.
- Cancellation: cancelling the consuming task or closing the iterator (`aclose()`, or
  `contextlib.aclosing`) closes the HTTP connection, so the provider stops generating.
- Structured output: with `response_schema`, a JSON-schema `response_format` is sent. If the
  provider rejects it (HTTP 400/422), the call is repeated once without it and the client stops
  sending it; `core.llm.structured` then extracts JSON from the free text.
- The model's own settings: `sampling` (temperature, top_p, min_p, penalties, any other body key
  a server takes) goes into every request body as given; a call's own value (a structured
  answer's temperature 0, a reply's max_tokens and stop) wins over it.  With
  `system_placement="first_user"` the system text opens the first user message instead of
  being a system message, for chat templates without a system role (Gemma's).
- Every request carries the call's purpose in the `X-RPBot-Purpose` header (for logs and tests;
  providers ignore it). `Authorization: Bearer` is sent only when `api_key` is not empty.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any, Literal

import httpx
from pydantic import BaseModel

from core.llm.base import (
    ChatMessage,
    LLMConnectionError,
    LLMError,
    LLMRateLimitedError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    ModelRole,
)
from core.llm.openai_stream import completion_text, error_in, stream_deltas
from core.llm.retry import RetryPolicy, make_retrying, parse_retry_after
from core.llm.roles import system_in_first_user
from core.llm.structured import response_format_for

logger = logging.getLogger("core.llm.openai")

PURPOSE_HEADER = "X-RPBot-Purpose"
MAX_STOP_SEQUENCES = 4  # the most the OpenAI API accepts
_MAX_CONNECT_TIMEOUT_S = 10.0
RESERVED_BODY_KEYS = frozenset({"model", "messages", "stream"})  # what rpbot itself decides for every request
SystemPlacement = Literal["system", "first_user"]


class OpenAICompatibleClient:
    """Chat completions against an OpenAI-compatible server. Implements `LLMClient`."""

    def __init__(
        self,
        *,
        base_url: str,
        narrative_model: str,
        classifier_model: str = "",
        api_key: str = "",
        timeout_s: float = 60.0,
        retry_policy: RetryPolicy | None = None,
        use_response_format: bool = True,
        extra_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        sampling: Mapping[str, Any] | None = None,
        system_placement: SystemPlacement = "system",
    ) -> None:
        reserved = sorted(RESERVED_BODY_KEYS & set(sampling or {}))
        if reserved:
            raise ValueError(f"sampling settings cannot set {', '.join(reserved)}: rpbot sends them itself")
        if system_placement not in ("system", "first_user"):
            raise ValueError(f"system_placement must be 'system' or 'first_user', not {system_placement!r}")
        self.sampling = dict(sampling or {})
        self.system_placement = system_placement
        self.base_url = base_url.rstrip("/")
        self.narrative_model = narrative_model
        self.classifier_model = classifier_model or narrative_model
        self.retry_policy = retry_policy or RetryPolicy()
        self.use_response_format = use_response_format
        headers = {"User-Agent": "rpbot", **(extra_headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, _MAX_CONNECT_TIMEOUT_S))
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._headers = headers

    async def __aenter__(self) -> OpenAICompatibleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http and not self._http.is_closed:
            await self._http.aclose()

    def model_for(self, role: ModelRole) -> str:
        return self.classifier_model if role == "classifier" else self.narrative_model

    async def list_models(self) -> list[str]:
        """Model ids the server offers (`GET {base_url}/models`)."""
        try:
            response = await self._http.get(f"{self.base_url}/models", headers=self._headers)
        except httpx.TransportError as error:
            raise _transport_error(error, "list_models") from error
        if response.status_code >= 400:
            raise _http_error(response, response.text, purpose="list_models")
        try:
            return [str(model["id"]) for model in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise LLMResponseError(f"unexpected /models answer: {response.text[:200]!r}") from error

    # -- non-streaming -------------------------------------------------------------------

    async def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        response_schema: type[BaseModel] | None = None,
        stop: Sequence[str] | None = None,
    ) -> str:
        payload = self._payload(messages, role, max_tokens, temperature, response_schema, False, stop)
        started = time.monotonic()
        try:
            text = await self._complete_with_retries(payload, purpose)
        except LLMRequestError as error:
            if "response_format" not in payload or error.status_code not in (400, 422):
                raise
            logger.warning(
                "Provider rejected response_format for %r (%s); retrying without it, and not "
                "sending it again",
                purpose,
                error,
            )
            self.use_response_format = False
            del payload["response_format"]
            text = await self._complete_with_retries(payload, purpose)
        logger.debug(
            "LLM %r (%s) answered %d chars in %.2fs",
            purpose,
            payload["model"],
            len(text),
            time.monotonic() - started,
        )
        return text

    async def _complete_with_retries(self, payload: dict[str, Any], purpose: str) -> str:
        async for attempt in make_retrying(self.retry_policy, purpose=purpose):
            with attempt:
                return await self._complete_once(payload, purpose)
        raise AssertionError("tenacity returned without a result")  # pragma: no cover

    async def _complete_once(self, payload: dict[str, Any], purpose: str) -> str:
        try:
            response = await self._http.post(
                self._completions_url, json=payload, headers=self._headers_for(purpose)
            )
        except httpx.TransportError as error:
            raise _transport_error(error, purpose) from error
        if response.status_code >= 400:
            raise _http_error(response, response.text, purpose=purpose)
        try:
            data = response.json()
        except ValueError as error:
            raise LLMResponseError(
                f"{purpose}: answer is not JSON: {response.text[:200]!r}", purpose=purpose
            ) from error
        return completion_text(data, purpose)

    # -- streaming -----------------------------------------------------------------------

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> AsyncGenerator[str, None]:
        payload = self._payload(messages, role, max_tokens, temperature, None, True, stop)
        started = time.monotonic()
        opened = await self._open_stream_with_retries(payload, purpose)
        chars = 0
        try:
            logger.debug(
                "LLM %r (%s) first token after %.2fs",
                purpose,
                payload["model"],
                time.monotonic() - started,
            )
            if opened.first_delta is not None:
                chars += len(opened.first_delta)
                yield opened.first_delta
                async for delta in opened.deltas:
                    chars += len(delta)
                    yield delta
        finally:
            await opened.aclose()
        logger.debug(
            "LLM %r (%s) streamed %d chars in %.2fs",
            purpose,
            payload["model"],
            chars,
            time.monotonic() - started,
        )

    async def _open_stream_with_retries(self, payload: dict[str, Any], purpose: str) -> _OpenStream:
        async for attempt in make_retrying(self.retry_policy, purpose=purpose):
            with attempt:
                return await self._open_stream_once(payload, purpose)
        raise AssertionError("tenacity returned without a result")  # pragma: no cover

    async def _open_stream_once(self, payload: dict[str, Any], purpose: str) -> _OpenStream:
        """Send the request and read up to the first text delta (the retryable part)."""
        stack = AsyncExitStack()
        try:
            headers = {**self._headers_for(purpose), "Accept": "text/event-stream"}
            try:
                response = await stack.enter_async_context(
                    self._http.stream("POST", self._completions_url, json=payload, headers=headers)
                )
            except httpx.TransportError as error:
                raise _transport_error(error, purpose) from error
            if response.status_code >= 400:
                raise _http_error(response, await _read_error_body(response), purpose=purpose)
            deltas = stream_deltas(response, purpose)
            stack.push_async_callback(deltas.aclose)
            first_delta = await anext(deltas, None)
            return _OpenStream(stack, deltas, first_delta)
        except BaseException:
            await stack.aclose()
            raise

    # -- helpers -------------------------------------------------------------------------

    @property
    def _completions_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _headers_for(self, purpose: str) -> dict[str, str]:
        return {**self._headers, PURPOSE_HEADER: purpose}

    def _payload(
        self,
        messages: Sequence[ChatMessage],
        role: ModelRole,
        max_tokens: int | None,
        temperature: float | None,
        response_schema: type[BaseModel] | None,
        stream: bool,
        stop: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        if self.system_placement == "first_user":
            messages = system_in_first_user(messages)
        payload: dict[str, Any] = {
            **self.sampling,
            "model": self.model_for(role),
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": stream,
        }
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if temperature is not None:
            payload["temperature"] = temperature
        if stop:
            payload["stop"] = list(stop)[:MAX_STOP_SEQUENCES]
        if response_schema is not None and self.use_response_format:
            payload["response_format"] = response_format_for(response_schema)
        return payload


class _OpenStream:
    """A stream whose first delta has been read; owns the HTTP response until `aclose`."""

    def __init__(
        self, stack: AsyncExitStack, deltas: AsyncGenerator[str, None], first_delta: str | None
    ) -> None:
        self._stack = stack
        self.deltas = deltas
        self.first_delta = first_delta

    async def aclose(self) -> None:
        await self._stack.aclose()


def _transport_error(error: httpx.TransportError, purpose: str) -> LLMError:
    """Connect timeouts count as connection failures (retried); other timeouts are not."""
    if isinstance(error, httpx.TimeoutException) and not isinstance(error, httpx.ConnectTimeout):
        return LLMTimeoutError(f"{purpose}: no answer in time ({error!r})", purpose=purpose)
    return LLMConnectionError(f"{purpose}: {error!r}", purpose=purpose)


async def _read_error_body(response: httpx.Response) -> str:
    try:
        await response.aread()
    except httpx.HTTPError:
        return ""
    return response.text


def _http_error(response: httpx.Response, body: str, *, purpose: str) -> LLMError:
    status = response.status_code
    try:
        detail = error_in(json.loads(body)) or body
    except ValueError:
        detail = body
    message = f"{purpose}: HTTP {status}: {detail[:300]}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        return LLMRateLimitedError(message, body=body, retry_after_s=retry_after, purpose=purpose)
    if status >= 500:
        return LLMServerError(
            message, status_code=status, body=body, retry_after_s=retry_after, purpose=purpose
        )
    return LLMRequestError(message, status_code=status, body=body, purpose=purpose)
