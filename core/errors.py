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


# --- characters ----------------------------------------------------------------


class CardImportError(RpbotError):
    """A character card could not be read (bad JSON, no card in the PNG, not a PNG...)."""


class UnknownCharacterError(CharacterNotFoundError):
    """A character named by an adapter (id or display name) is neither in the story nor registered."""


class InvalidCastError(RpbotError):
    """A scene was asked for with an impossible cast (e.g. a meanwhile scene of one character with itself)."""


# --- story flow ------------------------------------------------------------------


class InvalidTimeError(RpbotError):
    """A time skip or jump that does not move the story forward (a jump into the past, a zero skip)."""


class InvalidPersonaError(RpbotError):
    """A player persona with an empty or overlong name or description."""
