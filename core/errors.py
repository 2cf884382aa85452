"""Typed errors raised by the rpbot core.

Every failure the engine or an adapter may want to tell apart has its own class
here, under one base class, so callers never have to parse messages.  Errors
raised while appending an event always mean nothing was written.
"""

from __future__ import annotations


class RpbotError(Exception):
    """Base class of every error the core raises on purpose."""


# --- the event log -----------------------------------------------------------


class EventLogError(RpbotError):
    """An event could not be appended or applied; the transaction was rolled back."""


class UnknownEventKindError(EventLogError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown event kind {kind!r}")
        self.kind = kind


class InvalidPayloadError(EventLogError):
    """The payload does not fit the pydantic model of its event kind."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"invalid payload for event {kind!r}: {detail}")
        self.kind = kind
        self.detail = detail


class SchemaVersionError(RpbotError):
    """The database was written by a newer rpbot than this one."""


class StoryMoveError(RpbotError):
    """The stories could not be moved to another database; nothing was changed at the target."""


# --- missing or conflicting entities ------------------------------------------


class NotFoundError(RpbotError):
    """An event or a read referred to something that does not exist."""

    entity = "entity"

    def __init__(self, ident: object, detail: str = "") -> None:
        message = f"{self.entity} {ident!r} not found"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.ident = ident


class ChatNotFoundError(NotFoundError):
    entity = "chat"


class CharacterNotFoundError(NotFoundError):
    entity = "character"


class SceneNotFoundError(NotFoundError):
    entity = "scene"


class TurnNotFoundError(NotFoundError):
    entity = "turn"


class NothingToRegenerateError(TurnNotFoundError):
    """A regenerate was asked for, but the story's last turn is not a reply (none yet, or a time skip)."""

    def __init__(self, chat_id: str, reason: str) -> None:
        RpbotError.__init__(self, reason)
        self.ident = chat_id


class LineTakenBackError(TurnNotFoundError):
    """The player's line was taken back (deleted, rewound): it is no longer part of the story."""

    def __init__(self, source_id: str) -> None:
        super().__init__(source_id, "that line was taken back")


class NotLatestLineError(RpbotError):
    """Only the player's latest line can be edited or taken back this way; `source_id` is an older one."""

    def __init__(self, source_id: str, reason: str) -> None:
        super().__init__(reason)
        self.source_id = source_id


class NothingToRewindError(RpbotError):
    """A rewind was asked for, but the story holds no line of the player's to take back."""


class NothingToContinueError(RpbotError):
    """A continue was asked for, but the story's last turn is not a character's reply."""


class NoSuchTakeError(RpbotError):
    """A take was asked for by a number the newest reply does not have."""

    def __init__(self, number: int, count: int) -> None:
        super().__init__(f"there is no take {number}: the reply has {count} take{'s' if count != 1 else ''}")
        self.number = number
        self.count = count


class MemoryNotFoundError(NotFoundError):
    entity = "memory"


class ThreadNotFoundError(NotFoundError):
    entity = "plot thread"


class WorldEventNotFoundError(NotFoundError):
    entity = "world event"


class DigestNotFoundError(NotFoundError):
    entity = "digest"


class ConflictError(RpbotError):
    """The event would create something that already exists (a chat id, a turn source id)."""


class IllegalTransitionError(RpbotError):
    """A lifecycle change that the current state does not allow."""

    def __init__(self, entity: str, ident: object, current: str, requested: str) -> None:
        super().__init__(
            f"{entity} {ident!r}: cannot go from {current!r} to {requested!r}"
        )
        self.entity = entity
        self.ident = ident
        self.current = current
        self.requested = requested


class InvalidInputError(RpbotError):
    """Input the engine refuses as it stands (empty, too long, unencodable text, an absurd
    duration): the message says what to change, and nothing was written."""


class ReservedSourceIdError(InvalidInputError):
    """A source id the engine keeps for its own turns (the greeting, `<id>#reply`, ...)."""


# --- characters ----------------------------------------------------------------


class CardImportError(RpbotError):
    """A character card could not be read (bad JSON, no card in the PNG, not a PNG...)."""


class LoreImportError(RpbotError):
    """A lorebook could not be read (not JSON, not SillyTavern world info, an entry of the wrong
    shape, too large); the message says what is wrong, and nothing was written."""


class UnknownCharacterError(CharacterNotFoundError):
    """A character named by an adapter (id or display name) is neither in the story nor registered."""


class InvalidCastError(RpbotError):
    """A scene was asked for with an impossible cast (e.g. a meanwhile scene of one character with itself)."""


# --- story flow ------------------------------------------------------------------


class InvalidTimeError(RpbotError):
    """A time skip or jump that does not move the story forward (a jump into the past, a zero skip)."""


class InvalidPersonaError(RpbotError):
    """A player persona with an empty or overlong name or description."""


# --- players -----------------------------------------------------------------------


class NotAPlayerError(RpbotError):
    """A line (or an action) from someone who does not play in the story (never joined, or left)."""

    def __init__(self, player: str, chat_id: str) -> None:
        super().__init__(f"{player} does not play in this story")
        self.player = player
        self.chat_id = chat_id


class OwnerCannotLeaveError(RpbotError):
    """The story's owner asked to leave (or be removed from) their own story."""

    def __init__(self, player: str) -> None:
        super().__init__(f"{player} owns this story and cannot leave it")
        self.player = player


class NotYourLineError(RpbotError):
    """A player asked to change (edit, take back) a line another player said."""

    def __init__(self, source_id: str, author: str) -> None:
        super().__init__("only the player who said a line can change it")
        self.source_id = source_id
        self.author = author


# --- language models -----------------------------------------------------------
# The tree is drawn in `core.llm.base`, which re-exports these for the model clients.


class LLMError(RpbotError):
    """Base of every error a model client raises on purpose (one branch of the core's `RpbotError` tree)."""

    def __init__(self, message: str, *, purpose: str | None = None) -> None:
        super().__init__(message)
        self.purpose = purpose


class LLMTimeoutError(LLMError):
    """No response, or no next stream chunk, within the configured timeout."""


class LLMConnectionError(LLMError):
    """The provider could not be reached, or the connection broke before any text arrived."""


class LLMHTTPError(LLMError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self, message: str, *, status_code: int, body: str = "", purpose: str | None = None
    ) -> None:
        super().__init__(message, purpose=purpose)
        self.status_code = status_code
        self.body = body


class LLMRateLimitedError(LLMHTTPError):
    """HTTP 429. `retry_after_s` is the provider's Retry-After, when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        body: str = "",
        retry_after_s: float | None = None,
        purpose: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, purpose=purpose)
        self.retry_after_s = retry_after_s


class LLMServerError(LLMHTTPError):
    """HTTP 5xx (or a 200 whose body is an error object). `retry_after_s` as for 429."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: str = "",
        retry_after_s: float | None = None,
        purpose: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body, purpose=purpose)
        self.retry_after_s = retry_after_s


class LLMRequestError(LLMHTTPError):
    """HTTP 4xx other than 429: the request itself is wrong (key, model name, parameters)."""


class LLMResponseError(LLMError):
    """The provider answered, but the answer is not a usable completion."""


class LLMStreamError(LLMResponseError):
    """An error object or malformed data inside a stream. `partial_text` is what came before."""

    def __init__(self, message: str, *, partial_text: str = "", purpose: str | None = None) -> None:
        super().__init__(message, purpose=purpose)
        self.partial_text = partial_text


class LLMTruncatedError(LLMStreamError):
    """The stream ended (or the connection dropped) without `[DONE]` or a finish_reason,
    after some text had arrived or the body ended cleanly. `partial_text` holds the text."""
