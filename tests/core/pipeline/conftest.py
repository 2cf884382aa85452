"""Fixtures for the turn-pipeline tests: engines on temporary databases, helpers to drain streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

from core.engine import TurnUpdate
from core.llm import OpenAICompatibleClient, RetryPolicy

HOST = "wren-halloway"
HOST_NAME = "Wren Halloway"
GUEST = "odile-marchetti"
GUEST_NAME = "Captain Odile Marchetti"

FAST_RETRIES = RetryPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05, max_retry_after_s=2)


def http_client(server, **overrides) -> OpenAICompatibleClient:
    settings = dict(
        base_url=server.base_url, narrative_model="narrator-1", classifier_model="classifier-1",
        timeout_s=2.0, retry_policy=FAST_RETRIES,
    )
    settings.update(overrides)
    return OpenAICompatibleClient(**settings)


async def collect(updates: AsyncIterator[TurnUpdate]) -> list[TurnUpdate]:
    return [update async for update in updates]

