"""Shared reads of the turn pipeline: the cast of a chat, recent dialogue, what a regenerate answers.

One implementation used by posting a turn, regenerating one (and later by scene
close), so each step sees the story the same way:

- `load_cast`: the chat, the characters present (the host, and the guest if any) and the
  players (each with the persona they play in the story).
- `recent_dialogue`: the shown turns up to a given turn, oldest first.
- `shown_reply_for_source`: the reply (current swipe) made for a player's source id.
- `exchange_to_regenerate`: which user turn a regenerate answers, and which turn it replaces.
- the engine's own source ids (the greeting, a reply to a line, a follow-up, a guest's
  entrance, a time skip a line asked for), kept apart from an adapter's (`is_reserved_source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import CharacterNotFoundError, NothingToRegenerateError
from core.eventlog import Readable
from core.state import turns as turn_state
from core.state import world
from core.state.personas import Persona, story_players_personas
from core.state.turns import Turn

GREETING_SOURCE = "greeting"
REPLY_SUFFIX = "#reply"  # the source of the reply to the player's line `<source>`
FOLLOW_UP_SUFFIX = "#follow-up"  # the source of the other character's short answer to a reply
GUEST_SUFFIX = "#guest"  # a character's entrance: a guest's after the greeting, or an invited one's
SKIP_SUFFIX = "#skip"  # the narration of a time skip the player's line asked for
GUEST_ENTRANCE_SOURCE = GREETING_SOURCE + GUEST_SUFFIX
INVITED_ENTRANCE_PREFIX = "invite-"  # `invite-<seq>#guest`: the entrance of a character invited by command
ENGINE_SOURCE_SUFFIXES = (REPLY_SUFFIX, FOLLOW_UP_SUFFIX, GUEST_SUFFIX, SKIP_SUFFIX)


def is_reserved_source(source_id: str) -> bool:
    """Whether `source_id` is one of the engine's own (a player's line may never carry one)."""
    return source_id.strip() == GREETING_SOURCE or source_id.strip().endswith(ENGINE_SOURCE_SUFFIXES)


@dataclass(frozen=True)
class Cast:
    """A chat, the characters present in its main story (host first), and its players: `player` is
    the story's owner (its first player, whom `{{user}}` stands for), `players` those playing now
    (the owner first), `former_players` those who left (their lines keep their names)."""

    chat: world.Chat
    characters: tuple[world.Character, ...]
    player: Persona = field(default_factory=lambda: Persona("", "Player", is_default=True))
    players: tuple[Persona, ...] = ()
    former_players: tuple[Persona, ...] = ()

    @property
    def host(self) -> world.Character:
        return self.characters[0]

    @property
    def present_ids(self) -> list[str]:
        return [c.character_id for c in self.characters]

    @property
    def present_players(self) -> tuple[Persona, ...]:
        """The players playing now, the owner first."""
        return self.players or (self.player,)

    @property
    def player_ids(self) -> list[str]:
        return [p.owner for p in self.present_players]

    @property
    def is_group(self) -> bool:
        """Whether more than one player has played in the story: their lines are then named in prompts."""
        return len(self.present_players) + len(self.former_players) > 1

    def persona_of(self, player_id: str) -> Persona | None:
        return next((p for p in (self.player, *self.players, *self.former_players) if p.owner == player_id), None)

    def is_player(self, ident: str) -> bool:
        return self.persona_of(ident) is not None

    def get(self, character_id: str) -> world.Character | None:
        return next((c for c in self.characters if c.character_id == character_id), None)

    def name_of(self, speaker_id: str) -> str:
        persona = self.persona_of(speaker_id)
        if persona is not None:
            return persona.name
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
    ids = await world.cast_ids(source, chat_id)
    everyone = await story_players_personas(source, chat_id)
    owner = next(p.persona for p in everyone if p.is_owner)
    return Cast(chat, tuple([await require_character(source, i) for i in ids]), owner,
                tuple(p.persona for p in everyone if p.active), tuple(p.persona for p in everyone if not p.active))


def join_names(names: list[str], last: str = "and") -> str:
    """"A", "A and B", "A, B and C" (or with `last` "or")."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def players_phrase(cast: Cast) -> str:
    """The players playing now, as prompts name them: "Tobin (the player)", "Tobin and Mira (the players)"."""
    names = [p.name for p in cast.present_players]
    return f"{join_names(names)} ({'the player' if len(names) == 1 else 'the players'})"


async def exchange_lines(source: Readable, user_turn: Turn | None) -> list[Turn]:
    """The player lines a reply to `user_turn` answers, oldest first (none for an opening): the
    line, or every shown line of its round."""
    if user_turn is None:
        return []
    last = await round_end(source, user_turn)
    if last.source_id is None:
        return [last]
    return [*await turn_state.round_lines(source, last.chat_id, last.source_id), last]


async def round_end(source: Readable, line: Turn) -> Turn:
    """The last line of `line`'s round (whose reply answers it): itself, when it is not in a round."""
    if line.answered_with is None:
        return line
    return await turn_state.get_turn_by_source(source, line.chat_id, line.answered_with) or line


def answered_players(lines: list[Turn]) -> tuple[str, ...]:
    """Who the player lines `lines` are by, each once, in order: the players a reply to them answers."""
    return tuple(dict.fromkeys(line.speaker for line in lines if line.role == "user"))


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
    """The shown take of the reply made for `user_source_id` (or for the round it is a line of), if one is shown."""
    line = await turn_state.get_turn_by_source(source, chat_id, user_source_id)
    answered_with = line.answered_with if line is not None and line.answered_with else user_source_id
    return await shown_take_of_source(source, chat_id, reply_source(answered_with))


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
    user_turn: Turn | None  # the player's line the new reply answers (None: the greeting, an entrance, a follow-up)
    replaced: Turn | None  # the shown assistant turn the new reply supersedes, if any
    answered: Turn | None = None  # a follow-up: the reply it answers
    entrance: str = ""  # an entrance's source id (`...#guest`): a new take is an entrance again


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
    first = (await turn_state.sibling_turns(source, last.turn_id))[0]
    if first.source_id == GREETING_SOURCE:
        return ExchangeToRegenerate(None, last)
    if first.source_id and first.source_id.endswith(GUEST_SUFFIX):
        return ExchangeToRegenerate(None, last, entrance=first.source_id)
    if await is_follow_up(source, last):
        answered = next((t for t in reversed(turns) if t.role == "assistant" and t.turn_id < last.turn_id), None)
        return ExchangeToRegenerate(None, last, answered)
    user_turn = next((t for t in reversed(turns) if t.role == "user" and t.turn_id < last.turn_id), None)
    return ExchangeToRegenerate(user_turn, last)
