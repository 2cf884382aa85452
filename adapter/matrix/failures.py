"""What a player is told when something goes wrong: one mapping from errors to notices.

Every handler (a story line, a regenerate, a command, a reaction, an upload) ends in
something the player sees: the answer, or the notice `explain` writes for the error
that stopped it. Errors of the engine and the model (`core.errors.RpbotError`, which
`core.llm.LLMError` belongs to) say what went wrong in words meant for the player; the
adapter's own (`adapter.errors.AdapterError`) are told as they word themselves for the
player (`for_player`); anything else is a fault of the bot, logged with its traceback by the
caller and answered with a short apology rather than silence.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from adapter.errors import AdapterError
from core.errors import LLMError, LLMRateLimitedError, LLMRequestError, LLMTimeoutError, RpbotError

log = logging.getLogger(__name__)


def _for_the_player_as_it_stands(exc: BaseException) -> bool:
    """An error whose message was written for the player: refused input, bad arguments, a file not had."""
    return (isinstance(exc, RpbotError) and not isinstance(exc, LLMError)) or (isinstance(exc, AdapterError) and exc.worded_for_player)


def log_failure(what: str, exc: BaseException, where: Mapping[str, str | None]) -> None:
    """An expected failure (the model, refused input) as a warning; a fault of the bot with its traceback."""
    if isinstance(exc, RpbotError) or _for_the_player_as_it_stands(exc):
        log.warning("%s failed: %s", what, exc, extra=where)
    else:
        log.error("%s failed", what, exc_info=exc, extra=where)


def is_retryable(exc: BaseException) -> bool:
    """Whether the same action may work if simply tried again (the model, or a fault of ours)."""
    return not _for_the_player_as_it_stands(exc)


def explain(exc: BaseException, *, retry: str = "Try again.") -> str:
    """The notice for `exc`; `retry` says how to try again, added when trying again can help."""
    if isinstance(exc, LLMTimeoutError):
        what = "The language model did not answer in time."
    elif isinstance(exc, LLMRateLimitedError):
        what = "The language model did not answer: it is busy right now (rate limited)."
    elif isinstance(exc, LLMRequestError):
        what = (
            f"The language model did not answer: it refused the request (HTTP {exc.status_code}); "
            "the bot's operator should check its model settings."
        )
    elif isinstance(exc, LLMError):
        what = f"The language model did not answer ({exc.__class__.__name__})."
    elif _for_the_player_as_it_stands(exc):
        return str(exc)
    elif isinstance(exc, AdapterError):
        what = exc.for_player()
    else:
        what = f"Something went wrong on my side ({exc.__class__.__name__}); the details are in the bot's log."
    return f"{what} {retry}" if retry else what
