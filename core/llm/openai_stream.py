"""Reading an OpenAI-style chat-completions answer: SSE stream deltas and plain completions.

`stream_deltas` turns a streaming HTTP response into text deltas (SSE framing by httpx-sse,
which skips comment lines such as `: keep-alive`), raising the typed errors of `core.llm.base`:
an error object in the stream (`{"error": {...}}` or vLLM's `{"object": "error", ...}`) or data
that is not JSON -> `LLMStreamError`; a stream that ends, or whose connection drops, without
`[DONE]` and without a finish_reason -> `LLMTruncatedError` with the text received so far; a
connection lost before any text -> `LLMConnectionError` (which the caller may retry).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from httpx_sse import EventSource, SSEError

from core.llm.base import (
    LLMConnectionError,
    LLMResponseError,
    LLMStreamError,
    LLMTimeoutError,
    LLMTruncatedError,
)


async def stream_deltas(response: httpx.Response, purpose: str) -> AsyncGenerator[str, None]:
    """Text deltas of one streamed response; raises the errors described in the module doc."""
    received: list[str] = []
    if "application/json" in response.headers.get("content-type", ""):
        # The server ignored stream=true and sent one ordinary completion.
        try:
            body = await response.aread()
            yield completion_text(json.loads(body), purpose)
        except ValueError as error:
            raise LLMStreamError(f"{purpose}: answer is not JSON", purpose=purpose) from error
        return
    finished = False
    events = EventSource(response).aiter_sse()
    try:
        async for event in events:
            data = event.data.strip()
            if not data:
                continue
            if data == "[DONE]":
                finished = True
                break
            if event.event == "error":
                raise LLMStreamError(
                    f"{purpose}: provider error mid-stream: {data[:300]}",
                    partial_text="".join(received),
                    purpose=purpose,
                )
            chunk = _parse_chunk(data, purpose, received)
            choices = chunk.get("choices") or []
            if not choices:
                continue  # e.g. a trailing usage-only chunk
            choice = choices[0] if isinstance(choices[0], dict) else {}
            content = (choice.get("delta") or {}).get("content")
            if choice.get("finish_reason"):
                finished = True
            if content:
                received.append(content)
                yield content
    except httpx.TimeoutException as error:
        raise LLMTimeoutError(f"{purpose}: stream stalled ({error!r})", purpose=purpose) from error
    except httpx.TransportError as error:
        if finished:
            return
        if not received:
            raise LLMConnectionError(f"{purpose}: {error!r}", purpose=purpose) from error
        raise LLMTruncatedError(
            f"{purpose}: connection lost mid-stream ({error!r})",
            partial_text="".join(received),
            purpose=purpose,
        ) from error
    except SSEError as error:
        raise LLMStreamError(f"{purpose}: {error}", purpose=purpose) from error
    finally:
        await events.aclose()
    if not finished:
        raise LLMTruncatedError(
            f"{purpose}: stream ended without [DONE] or finish_reason",
            partial_text="".join(received),
            purpose=purpose,
        )


def _parse_chunk(data: str, purpose: str, received: list[str]) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise LLMStreamError(
            f"{purpose}: malformed stream data: {data[:200]!r}",
            partial_text="".join(received),
            purpose=purpose,
        )
    error_message = error_in(chunk)
    if error_message is not None:
        raise LLMStreamError(
            f"{purpose}: provider error mid-stream: {error_message}",
            partial_text="".join(received),
            purpose=purpose,
        )
    return chunk


def error_in(body: Any) -> str | None:
    """The error message if `body` is an error object (OpenAI style or vLLM style)."""
    if not isinstance(body, dict):
        return None
    if body.get("error"):
        error = body["error"]
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    if body.get("object") == "error":
        return str(body.get("message") or body)
    return None


def completion_text(data: Any, purpose: str) -> str:
    error_message = error_in(data)
    if error_message is not None:
        raise LLMResponseError(f"{purpose}: provider error: {error_message}", purpose=purpose)
    try:
        content = data["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise LLMResponseError(
            f"{purpose}: unexpected completion shape: {str(data)[:200]!r}", purpose=purpose
        ) from error
    return content if isinstance(content, str) else ""
