"""Shared reads of the turn pipeline: the cast of a chat, recent dialogue, what a regenerate answers.

One implementation used by posting a turn, regenerating one (and later by scene
close), so each step sees the story the same way:

- `load_cast`: the chat and the characters present (the host, and the guest if any).
- `recent_dialogue`: the shown turns up to a given turn, oldest first.
- `shown_reply_for_source`: the reply (current swipe) made for a player's source id.
- `exchange_to_regenerate`: which user turn a regenerate answers, and which turn it replaces.
- the engine's own source ids (the greeting, a reply to a line, a follow-up, a guest's
  entrance, a time skip a line asked for), kept apart from an adapter's (`is_reserved_source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import CharacterNotFoundError, NothingToRegenerateError
from core.eventlog import USER, Readable
from core.state import turns as turn_state
from core.state import world
from core.state.personas import Persona, story_persona
from core.state.turns import Turn

GREETING_SOURCE = "greeting"
REPLY_SUFFIX = "#reply"  # the source of the reply to the player's line `<source>`
FOLLOW_UP_SUFFIX = "#follow-up"  # the source of the other character's short answer to a reply
GUEST_SUFFIX = "#guest"  # a guest's entrance after the greeting
SKIP_SUFFIX = "#skip"  # the narration of a time skip the player's line asked for
GUEST_ENTRANCE_SOURCE = GREETING_SOURCE + GUEST_SUFFIX
ENGINE_SOURCE_SUFFIXES = (REPLY_SUFFIX, FOLLOW_UP_SUFFIX, GUEST_SUFFIX, SKIP_SUFFIX)


def is_reserved_source(source_id: str) -> bool:
    """Whether `source_id` is one of the engine's own (a player's line may never carry one)."""
    return source_id.strip() == GREETING_SOURCE or source_id.strip().endswith(ENGINE_SOURCE_SUFFIXES)


@dataclass(frozen=True)
class Cast:
    """A chat, the characters present in its main story (host first), and the player's persona."""

    chat: world.Chat
    characters: tuple[world.Character, ...]
    player: Persona = field(default_factory=lambda: Persona(USER, "Player", is_default=True))

    @property
    def host(self) -> world.Character:
        return self.characters[0]

    @property
    def present_ids(self) -> list[str]:
        return [c.character_id for c in self.characters]

    def get(self, character_id: str) -> world.Character | None:
        return next((c for c in self.characters if c.character_id == character_id), None)

    def name_of(self, speaker_id: str) -> str:
        if speaker_id == USER:
            return self.player.name
        character = self.get(speaker_id)
        return character.name if character else speaker_id

    def name_of_turn(self, turn: Turn) -> str:
        """Who said `turn`: a player's line by the persona name it was spoken under."""
        return turn.speaker_name or self.name_of(turn.speaker)


async def require_character(source: Readable, character_id: str) -> world.Character:
    character = await world.get_character(source, character_id)
    if character is None:
        raise CharacterNotFoundError(character_id)
    return character


async def load_cast(source: Readable, chat_id: str) -> Cast:
    chat = await world.require_chat(source, chat_id)
    ids = [chat.host] + ([chat.guest] if chat.guest and chat.guest != chat.host else [])
    player = await story_persona(source, chat_id, chat.owner)
    return Cast(chat, tuple([await require_character(source, i) for i in ids]), player)


async def recent_dialogue(
    source: Readable, chat_id: str, *, limit: int, up_to_turn_id: int | None = None, witness: str | None = None
) -> list[Turn]:
    """The last `limit` shown turns of the chat with turn_id <= `up_to_turn_id`, oldest first;
    with `witness`, only those that character witnessed (filtered in SQL).

    `up_to_turn_id` leaves out what follows the turn being answered (the reply a
    regenerate replaces is the only turn after it, so one extra row is fetched).
    """
    turns = await turn_state.recent_turns(source, chat_id, limit + 1, witness=witness)
    if up_to_turn_id is not None:
        turns = [t for t in turns if t.turn_id <= up_to_turn_id]
    return turns[-limit:] if limit > 0 else []


def reply_source(user_source_id: str) -> str:
    """The source id of the reply to the player's line `user_source_id`."""
    return user_source_id + REPLY_SUFFIX


async def shown_reply_for_source(source: Readable, chat_id: str, user_source_id: str) -> Turn | None:
    """The shown take of the reply made for `user_source_id`, if one is shown."""
    return await shown_take_of_source(source, chat_id, reply_source(user_source_id))


async def shown_take_of_source(source: Readable, chat_id: str, source_id: str) -> Turn | None:
    """The shown take of the turn recorded for the engine source `source_id`, if one is shown."""
    first = await turn_state.get_turn_by_source(source, chat_id, source_id)
    if first is None or first.is_shown:
        return first
    siblings = await turn_state.sibling_turns(source, first.turn_id)
    return next((t for t in siblings if t.is_shown), None)


async def is_follow_up(source: Readable, turn: Turn) -> bool:
    """Whether `turn` is a take of the other character's short answer to a reply."""
    first = (await turn_state.sibling_turns(source, turn.turn_id))[0]
    return bool(first.source_id and first.source_id.endswith(FOLLOW_UP_SUFFIX))


@dataclass(frozen=True)
class ExchangeToRegenerate:
    user_turn: Turn | None  # the player's line the new reply answers (None: the greeting, a follow-up)
    replaced: Turn | None  # the shown assistant turn the new reply supersedes, if any
    answered: Turn | None = None  # a follow-up: the reply it answers


async def exchange_to_regenerate(source: Readable, chat_id: str) -> ExchangeToRegenerate:
    """What a regenerate answers: the last shown assistant turn and the user turn before it,
    or (when the last shown turn is the player's, e.g. after a failed reply) just that turn."""
    last = await turn_state.last_turn(source, chat_id)
    if last is None:
        raise NothingToRegenerateError(chat_id, "There is no reply to redo yet: say something first.")
    if last.role == "user":
        return ExchangeToRegenerate(last, None)
    if last.role == "narration":
        raise NothingToRegenerateError(
            chat_id, "There is no reply to redo: the story's last turn is a time skip. Say something to go on."
        )
    turns = await turn_state.recent_turns(source, chat_id, 8)
    if await is_follow_up(source, last):
        answered = next((t for t in reversed(turns) if t.role == "assistant" and t.turn_id < last.turn_id), None)
        return ExchangeToRegenerate(None, last, answered)
    user_turn = next((t for t in reversed(turns) if t.role == "user" and t.turn_id < last.turn_id), None)
    return ExchangeToRegenerate(user_turn, last)
