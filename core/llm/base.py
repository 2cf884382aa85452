"""The contract between the engine and any language model: messages, the client protocol, errors.

Everything that talks to a model (the OpenAI-compatible HTTP client, the offline demo model,
the test fake) implements `LLMClient`. Callers pass OpenAI-style chat messages and name the
*purpose* of every call ("narrate", "addressee", "scene_close", ...), so logs, tests and the
fake server can tell calls apart. `role` picks the model: the narrative model writes prose,
the classifier model answers short structured questions.

Errors are typed so callers can react without parsing strings (they live in `core.errors`, re-exported here):

    LLMError
    ├── LLMTimeoutError        no answer (or no next chunk) within the timeout
    ├── LLMConnectionError     could not connect, or the connection broke before any text
    ├── LLMRateLimitedError    HTTP 429, after the retries ran out (`retry_after_s` if known)
    ├── LLMServerError         HTTP 5xx, after the retries ran out
    ├── LLMRequestError        any other HTTP 4xx (bad key, unknown model, bad request)
    └── LLMResponseError       the provider answered, but not with a usable completion
        └── LLMStreamError     an error object, or malformed data, inside an SSE stream
            └── LLMTruncatedError  the stream stopped early; `partial_text` holds what came

Cancellation is plain `asyncio.CancelledError` (or `aclose()` on the stream iterator).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Literal, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel

from core.errors import (
    LLMConnectionError,
    LLMError,
    LLMHTTPError,
    LLMRateLimitedError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMStreamError,
    LLMTimeoutError,
    LLMTruncatedError,
)

ModelRole = Literal["narrative", "classifier"]
"""Which configured model serves a call: prose ("narrative") or short structured answers."""


class ChatMessage(TypedDict):
    """One OpenAI-style chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


@runtime_checkable
class LLMClient(Protocol):
    """What the engine needs from a language model."""

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
        """Return the whole reply text (ending before any of the `stop` sequences). With `response_schema` the reply should be JSON for it
        (not guaranteed: use `core.llm.structured.generate_json` to validate)."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> AsyncGenerator[str, None]:
        """Yield the reply as text deltas (ending before any of the `stop` sequences). Close the iterator (`aclose()`, or
        `contextlib.aclosing`) or cancel the task to stop generating."""
        ...

    async def aclose(self) -> None:
        """Release connections. Safe to call more than once."""
        ...


RETRYABLE_ERRORS: tuple[type[LLMError], ...] = (
    LLMConnectionError,
    LLMRateLimitedError,
    LLMServerError,
)
"""Errors worth another attempt, as long as no text has been handed to the caller yet."""

__all__ = [
    "RETRYABLE_ERRORS",
    "ChatMessage",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMHTTPError",
    "LLMRateLimitedError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMServerError",
    "LLMStreamError",
    "LLMTimeoutError",
    "LLMTruncatedError",
    "ModelRole",
]
