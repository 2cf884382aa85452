"""Shared reads of the turn pipeline: the cast of a chat, recent dialogue, what a regenerate answers.

One implementation used by posting a turn, regenerating one (and later by scene
close), so each step sees the story the same way:

- `load_cast`: the chat and the characters present (the host, and the guest if any).
- `recent_dialogue`: the shown turns up to a given turn, oldest first.
- `shown_reply_for_source`: the reply (current swipe) made for a player's source id.
- `exchange_to_regenerate`: which user turn a regenerate answers, and which turn it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import CharacterNotFoundError, NothingToRegenerateError
from core.eventlog import USER, Readable
from core.state import turns as turn_state
from core.state import world
from core.state.personas import Persona, get_persona
from core.state.turns import Turn

REPLY_SUFFIX = "#reply"


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


async def require_character(source: Readable, character_id: str) -> world.Character:
    character = await world.get_character(source, character_id)
    if character is None:
        raise CharacterNotFoundError(character_id)
    return character


async def load_cast(source: Readable, chat_id: str) -> Cast:
    chat = await world.require_chat(source, chat_id)
    ids = [chat.host] + ([chat.guest] if chat.guest and chat.guest != chat.host else [])
    return Cast(chat, tuple([await require_character(source, i) for i in ids]), await get_persona(source, chat.owner))


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
    """The shown swipe of the reply made for `user_source_id`, if a reply was recorded."""
    first = await turn_state.get_turn_by_source(source, chat_id, reply_source(user_source_id))
    if first is None or first.is_shown:
        return first
    siblings = await turn_state.sibling_turns(source, first.turn_id)
    return next((t for t in siblings if t.is_shown), first)


@dataclass(frozen=True)
class ExchangeToRegenerate:
    user_turn: Turn | None  # the player's line the new reply answers (None: the greeting)
    replaced: Turn | None  # the shown assistant turn the new reply supersedes, if any


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
    user_turn = next((t for t in reversed(turns) if t.role == "user" and t.turn_id < last.turn_id), None)
    if last.role != "assistant":
        return ExchangeToRegenerate(user_turn, None)
    return ExchangeToRegenerate(user_turn, last)
