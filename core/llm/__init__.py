"""The language-model layer: one protocol, an OpenAI-compatible client, a demo model, a fake.

`make_llm_client("openai", base_url=..., api_key=..., narrative_model=..., classifier_model=...,
timeout_s=..., sampling=..., system_placement=...)` or `make_llm_client("demo")` builds the client the engine uses. Nothing here
imports Matrix code.
"""

from __future__ import annotations

from typing import Any

from core.llm.base import (
    RETRYABLE_ERRORS,
    ChatMessage,
    LLMClient,
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
    ModelRole,
)
from core.llm.demo import DemoLLM
from core.llm.fake import FakeLLM, FakeLLMCall, UnplannedLLMCallError
from core.llm.openai_client import OpenAICompatibleClient
from core.llm.retry import RetryPolicy
from core.llm.structured import extract_json, generate_json, parse_structured, placeholder_instance

_OPENAI_ONLY_SETTINGS = ("base_url", "api_key", "narrative_model", "classifier_model", "timeout_s", "sampling",
                         "system_placement")


def make_llm_client(provider: str, /, **settings: Any) -> LLMClient:
    """Build a client for `provider`: "openai" (any OpenAI-compatible endpoint) or "demo".

    Settings are `OpenAICompatibleClient`'s keyword arguments; for "demo" the connection
    settings are ignored, and a `provider` key among them is dropped, so a whole `[llm]`
    config section can be passed either way: `make_llm_client(cfg.provider, **cfg.model_dump())`.
    """
    settings.pop("provider", None)
    name = provider.strip().lower()
    if name == "openai":
        return OpenAICompatibleClient(**settings)
    if name == "demo":
        demo_settings = {k: v for k, v in settings.items() if k not in _OPENAI_ONLY_SETTINGS}
        return DemoLLM(**demo_settings)
    raise ValueError(f"unknown LLM provider {provider!r}; expected 'openai' or 'demo'")


__all__ = [
    "RETRYABLE_ERRORS",
    "ChatMessage",
    "DemoLLM",
    "FakeLLM",
    "FakeLLMCall",
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
    "OpenAICompatibleClient",
    "RetryPolicy",
    "UnplannedLLMCallError",
    "extract_json",
    "generate_json",
    "make_llm_client",
    "parse_structured",
    "placeholder_instance",
]
