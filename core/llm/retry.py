"""Retry policy for model calls: bounded attempts, exponential backoff, honour Retry-After.

One place decides how model calls are retried (tenacity does the looping). Only the errors in
`RETRYABLE_ERRORS` are retried (connection failures, 429, 5xx); a provider's Retry-After is
honoured, capped at `max_retry_after_s`. Streams use this only for the part before the first
token, so text already shown to a player is never duplicated by a retry.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from core.llm.base import RETRYABLE_ERRORS

logger = logging.getLogger("core.llm.retry")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. Tests shrink the delays to milliseconds."""

    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    max_retry_after_s: float = 30.0
    jitter: bool = True

    def delay_for(self, attempt_number: int, error: BaseException | None) -> float:
        """Seconds to wait after failed attempt `attempt_number` (1-based)."""
        retry_after = getattr(error, "retry_after_s", None)
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.max_retry_after_s))
        delay = min(self.backoff_base_s * (2 ** (attempt_number - 1)), self.backoff_max_s)
        if self.jitter:
            delay *= random.uniform(0.5, 1.0)
        return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def make_retrying(policy: RetryPolicy, *, purpose: str) -> AsyncRetrying:
    """A tenacity retrier for one call: retries RETRYABLE_ERRORS, re-raises the last error."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.delay_for(state.attempt_number, error)

    def log_before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "LLM call %r failed (attempt %d/%d): %s; retrying in %.2fs",
            purpose,
            state.attempt_number,
            policy.max_attempts,
            error,
            state.upcoming_sleep,
        )

    return AsyncRetrying(
        stop=stop_after_attempt(max(1, policy.max_attempts)),
        wait=wait,
        retry=retry_if_exception_type(RETRYABLE_ERRORS),
        reraise=True,
        before_sleep=log_before_sleep,
    )


__all__ = ["RetryPolicy", "make_retrying", "parse_retry_after"]
