"""Engine: the one API every adapter calls.

An adapter creates chats (stories) for its players (beginning at the story time
given, else the one their opening implies, else `STORY_START`; with a scenario of
their own, if given), asks for a character's
greeting, and posts player lines with its own source id (the Matrix event id);
`post_turn` streams the character's reply as `TurnUpdate`s. Posting the same
source id twice returns the turn already made: nothing is generated twice.
`regenerate` replaces the last reply with a new take (rolling back what the old
one caused), and `cancel` stops a chat's in-flight generation, keeping the
partial reply marked truncated.  The pipeline itself lives in core/services
(`core.services.talk`); state changes go through the event log (core/state,
core/eventlog).

Fixing a turn (`core.services.story_control`): `edit_line` rewrites the player's latest
line (then answer it again with `post_turn`), `take_back_line` and `rewind` take lines
back, `takes` / `show_take` show another take of the newest reply, `continue_reply` makes
it go on.  Every rollback is exact: the story equals a run that produced only what is
shown.  A line wrapped in double parentheses is out of character: answered, never
recorded.  `set_note` gives a story its standing note; `set_persona` with a chat id sets
the persona the player plays in that story.  Player source ids never take the engine's
own (`greeting`, `<id>#reply`, ...): ReservedSourceIdError.

Story actions: `skip` / `jump` move the chat clock with a short
narration; `close_scene` writes each present character's own summary of the
scene; `meanwhile` plays two characters off-screen and queues a digest the
player sees on the next turn; `plan_event`, `list_threads`,
`list_world_events`, `search_memory`, `recent_memories`, `status` and `context` read or
shape the story; `forget_memory` makes one character forget one memory.  A turn may also ask for a skip, a jump or a scene close in plain words;
the routing call detects it (see `core.services.addressee`).  Errors are typed
(core.errors): ChatNotFoundError, UnknownCharacterError, InvalidCastError,
InvalidTimeError, InvalidInputError (a line or text refused as it stands),
NothingToRegenerateError; model failures raise `core.llm.LLMError`, part of the
same `RpbotError` tree.  Bad input never writes anything.

Exactly once: an adapter hands each player line over with `receive_line` as soon as it
sees it, answers it with `post_turn`, and says when the answer was shown
(`line_answered`); `owed_lines` lists what is still owed after a restart.  The engine
alone decides what a regenerate replaces (`regenerate_target`).

Characters come and go: `invite_character` brings one in (its entrance streamed), up to
`MAX_CHARACTERS` at once; `dismiss_character` lets one leave (never the host); `cast` lists
those present.  Several players: a story's owner is its first player; others `join_player` and `leave_player`
(`players` lists them).  Every call that acts for a player takes `player=` (None: the story's
owner): a line by someone who does not play in the story raises NotAPlayerError and writes
nothing; each player is a witness of what is said while they play, with a persona of their own
in the story; a reply names the players it answers (`TurnUpdate.answering`).

`export_story` reads a whole story as the player saw it (for `rpbot export`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from core.characters.builtin import install_builtin_characters
from core.characters.cards import import_card
from core.errors import (
    InvalidCastError,
    InvalidInputError,
    InvalidPersonaError,
    InvalidTimeError,
    MemoryNotFoundError,
    OwnerCannotLeaveError,
    ReservedSourceIdError,
    UnknownCharacterError,
)
from core.eventlog.db import Database, Transaction, open_database
from core.eventlog.events import LEGACY_PLAYER
from core.llm.base import ChatMessage, LLMClient
from core.services import reports, scenes, timeskip
from core.services.card_text import greeting as greeting_text
from core.services.cast_changes import MAX_CHARACTERS, CastChanges
from core.services.dialogue import (
    GREETING_SOURCE,
    GUEST_ENTRANCE_SOURCE,
    REPLY_SUFFIX,
    exchange_to_regenerate,
    is_reserved_source,
    load_cast,
    require_character,
)
from core.services.lorebook import LoreEntryInfo, LoreImportResult, import_card_books, import_world_info, lore_infos
from core.services.meanwhile import resolve_character, run_meanwhile
from core.services.ooc import is_out_of_character
from core.services.opening_time import DEFAULT_START, story_start
from core.services.prompt import assemble_prompt
from core.services.replies import ReplySettings, stop_sequences
from core.services.reports import (
    ChatStatus,
    ContextReport,
    ContextSection,
    MemoryInfo,
    ThreadInfo,
    WorldEventInfo,
)
from core.services.rollback import TakenBack
from core.services.scenes import SceneCloseResult
from core.services.story_control import StoryControl
from core.services.talk import AfterTurn, AfterTurnStep, Line, TurnPipeline, TurnUpdate, require_playing
from core.services.timeskip import SkipResult
from core.services.tokens import DEFAULT_CONTEXT_TOKENS
from core.state import lines, personas, plans, players, world
from core.state import memory as memory_state
from core.state import turns as turn_state
from core.state.lines import OwedLine
from core.state.personas import Persona
from core.text_input import check_line, check_note, check_readable, check_scenario

log = logging.getLogger(__name__)

STORY_START = DEFAULT_START  # a story begins on a spring morning when nothing says otherwise
LAST_START_YEAR = 9000
MAX_PLAYER_ID_CHARS = 200

__all__ = [
    "GREETING_SOURCE",
    "REPLY_SUFFIX",
    "AfterTurn",
    "AfterTurnStep",
    "CharacterInfo",
    "ChatInfo",
    "ChatStatus",
    "ContextReport",
    "ContextSection",
    "Engine",
    "ExportedScene",
    "ExportedTurn",
    "MAX_CHARACTERS",
    "LoreEntryInfo",
    "LoreImportResult",
    "MemoryInfo",
    "NextPrompt",
    "OwedLine",
    "Persona",
    "PlayerInfo",
    "RegenerateTarget",
    "ReplySettings",
    "Rewound",
    "RoundLine",
    "SceneCloseResult",
    "SkipResult",
    "StoryExport",
    "Takes",
    "ThreadInfo",
    "TurnUpdate",
    "WorldEventInfo",
]


@dataclass(frozen=True)
class ChatInfo:
    chat_id: str
    owner: str
    title: str
    host_id: str
    host_name: str
    guest_id: str | None = None
    guest_name: str | None = None
    starts_at: datetime | None = None  # the story time it begins at


@dataclass(frozen=True)
class PlayerInfo:
    """A player of a story: their id, the persona name they play under there, whether they own the
    story, and whether they play in it now (`active`; False once they left)."""

    player_id: str
    name: str
    is_owner: bool
    active: bool


@dataclass(frozen=True)
class RoundLine:
    """One player's line of a round: who said it (None: the story's owner), what, and the adapter's id."""

    player: str | None
    text: str
    source_id: str


@dataclass(frozen=True)
class NextPrompt:
    """What `!context full` shows: the messages and parameters of the next reply's request."""

    speaker_name: str
    messages: list[ChatMessage]
    max_tokens: int
    stop: list[str]
    tokens: int
    budget_tokens: int


@dataclass(frozen=True)
class RegenerateTarget:
    """What a regenerate would do now: replace the reply `replaces_turn_id` (spoken by
    `speaker_id`), or, when the player's newest line has no reply (`replaces_turn_id` None),
    answer that line (`line_source_id`)."""

    replaces_turn_id: int | None
    speaker_id: str | None
    line_source_id: str | None


@dataclass(frozen=True)
class Rewound:
    """What a take-back did: the turns that left the story (newest first; an adapter removes the
    messages that showed them), the player's lines among them by source id, how many steps
    were taken back, whether a scene opened again, and the story time now."""

    turn_ids: tuple[int, ...]
    line_sources: tuple[str, ...]
    steps: int
    scene_reopened: bool
    clock: datetime


@dataclass(frozen=True)
class Takes:
    """The takes of the newest reply: the one shown (`turn_id`, take `shown` of `count`)."""

    turn_id: int
    shown: int
    count: int
    speaker_name: str


@dataclass(frozen=True)
class CharacterInfo:
    character_id: str
    name: str
    description: str
    owner: str | None = None  # the player who imported it (None: everyone's, like the built-in ones)
    shared: bool = False  # its owner shared it with everyone

    @classmethod
    def of(cls, character: world.Character) -> CharacterInfo:
        return cls(character.character_id, character.name, character.description, character.owner, character.shared)


@dataclass(frozen=True)
class ExportedTurn:
    """One shown turn of the story, as the player saw it (superseded swipes are left out)."""

    role: str  # "user", "assistant" or "narration"
    speaker_name: str
    text: str
    story_time: datetime
    scene_id: int | None
    truncated: bool


@dataclass(frozen=True)
class ExportedScene:
    """A main scene, with each present character's own summary once it was closed."""

    scene_id: int
    title: str
    started_at: datetime
    closed_at: datetime | None
    summaries: tuple[tuple[str, str], ...]  # (character name, summary from its point of view)


@dataclass(frozen=True)
class StoryExport:
    """A whole story for the player: read by `Engine.export_story`, rendered by adapters."""

    chat_id: str
    title: str
    owner: str
    clock: datetime
    cast: tuple[CharacterInfo, ...]
    turns: tuple[ExportedTurn, ...]
    scenes: tuple[ExportedScene, ...]
    threads: tuple[ThreadInfo, ...]
    players: tuple[PlayerInfo, ...] = ()


class Engine:
    def __init__(
        self, db: Database, llm: LLMClient, *, budget_tokens: int = DEFAULT_CONTEXT_TOKENS,
        replies: ReplySettings | None = None,
    ) -> None:
        self.db = db
        self.llm = llm
        self.pipeline = TurnPipeline(db, llm, budget_tokens=budget_tokens, replies=replies or ReplySettings())
        self.control = StoryControl(self.pipeline)
        self.cast_changes = CastChanges(self.pipeline)

    @classmethod
    async def open(
        cls, path: Path | str, llm: LLMClient, *, budget_tokens: int = DEFAULT_CONTEXT_TOKENS,
        replies: ReplySettings | None = None,
    ) -> Engine:
        db = await open_database(path)
        await install_builtin_characters(db)
        return cls(db, llm, budget_tokens=budget_tokens, replies=replies)

    async def close(self) -> None:
        """Stop in-flight generations, wait for after-turn work, then release the model and the database."""
        await self.pipeline.close()
        await self.llm.aclose()
        await self.db.close()

    def add_after_turn_step(self, step: AfterTurnStep) -> None:
        """Run `step` after every recorded reply (as a task; the chat's next turn waits for it)."""
        self.pipeline.after_turn_steps.append(step)

    async def list_characters(self, *, player: str | None = None) -> list[CharacterInfo]:
        """The characters `player` may use (the built-in ones, shared ones and their own), by name;
        every character with None."""
        return [CharacterInfo.of(c) for c in await world.list_characters(self.db, usable_by=player)]

    async def import_character(self, data: bytes | str, *, owner: str | None = None) -> CharacterInfo:
        """Register the character of a Character Card V2/V3 (JSON, or PNG with a `chara`/`ccv3` chunk),
        owned by `owner`: listed and usable only for them (in their stories) until they share it
        (None: everyone's).  It always gets an id of its own: an import never replaces a character,
        so nobody's card is taken over by another's import of it.

        Raises CardImportError for anything that is not a readable card, InvalidInputError for an
        owner id a player cannot have; nothing is written then.
        """
        character = await import_card(self.db, data, owner=None if owner is None else check_player_id(owner))
        return CharacterInfo.of(character)

    async def share_character(self, player: str, character: str) -> CharacterInfo:
        """`player`'s own character (id or name) becomes everyone's to list and use.  A character
        already everyone's is returned as it is; UnknownCharacterError for one `player` may not use."""
        chosen = await resolve_character(self.db, character, usable_by=[player])
        if chosen.owner == player and not chosen.shared:
            await world.share_character(self.db, chosen.character_id)
            chosen = await require_character(self.db, chosen.character_id)
        return CharacterInfo.of(chosen)

    async def persona(self, owner: str, chat_id: str | None = None) -> Persona:
        """The player's persona for new stories (a default from their id until they set one), or
        with `chat_id`, the one they play in that story."""
        if chat_id is None:
            return await personas.get_persona(self.db, owner)
        await world.require_chat(self.db, chat_id)
        return await personas.story_persona(self.db, chat_id, owner)

    async def set_persona(self, owner: str, name: str, description: str = "", chat_id: str | None = None) -> Persona:
        """Set the player's persona: the name `{{user}}` stands for, and a short description.
        Without `chat_id`, for new stories (a story begun keeps its own); with it, for that story,
        from the next line on (its earlier lines keep the name they were said under).
        InvalidPersonaError for an empty or overlong name or description."""
        name, description = " ".join(name.split()), description.strip()
        if not name or len(name) > personas.MAX_NAME_CHARS or len(description) > personas.MAX_DESCRIPTION_CHARS:
            raise InvalidPersonaError(
                f"a persona needs a name of 1 to {personas.MAX_NAME_CHARS} characters and a description of at "
                f"most {personas.MAX_DESCRIPTION_CHARS}"
            )
        if chat_id is not None:
            await world.require_chat(self.db, chat_id)
            return await personas.set_story_persona(self.db, chat_id, owner, name, description)
        async with self.db.transaction() as tx:
            old = await personas.get_persona(tx, owner)
            for begun in await personas.stories_following_default(tx, owner):  # they keep the persona they began with
                await personas.set_story_persona(tx, begun, owner, old.name, old.description)
            return await personas.set_persona(tx, owner, name, description)

    async def ensure_persona(self, owner: str, name: str) -> Persona:
        """Give the player a persona named `name` (e.g. their display name) unless they have one."""
        name = " ".join(name.split())[: personas.MAX_NAME_CHARS]
        if name and not await personas.has_persona(self.db, owner):
            return await personas.set_persona(self.db, owner, name)
        return await personas.get_persona(self.db, owner)

    # -- players --------------------------------------------------------------------------

    async def players(self, chat_id: str) -> list[PlayerInfo]:
        """Everyone who plays or played in the story: the owner first, then in the order they joined."""
        await world.require_chat(self.db, chat_id)
        return [PlayerInfo(p.persona.owner, p.persona.name, p.is_owner, p.active)
                for p in await personas.story_players_personas(self.db, chat_id)]

    async def join_player(self, chat_id: str, player_id: str, display_name: str = "") -> PlayerInfo:
        """`player_id` plays in the story from now on: a witness of what is said from here (not of
        what was said before), with a persona of their own there (their default persona if they set
        one, else `display_name`, else a name from their id).  Idempotent; a player who left plays
        again, with the persona they had.  InvalidInputError for an id that cannot be a player's."""
        player_id = check_player_id(player_id)
        async with self.db.transaction() as tx:
            chat = await world.require_chat(tx, chat_id)
            if await world.get_character(tx, player_id) is not None:
                raise InvalidInputError(f"{player_id!r} is a character's id, not a player's")
            if not await players.is_playing(tx, chat_id, player_id):
                await players.join(tx, chat_id, player_id)
                scene = await world.current_scene(tx, chat_id)
                if scene is not None:
                    await world.join_scene(tx, scene, player_id, player=True)
            if player_id != chat.owner and not await personas.has_story_persona(tx, chat_id, player_id):
                await self._first_story_persona(tx, chat_id, player_id, display_name)
        return next(p for p in await self.players(chat_id) if p.player_id == player_id)

    @staticmethod
    async def _first_story_persona(tx: Transaction, chat_id: str, player_id: str, display_name: str) -> None:
        if await personas.has_persona(tx, player_id):
            chosen = await personas.get_persona(tx, player_id)
            name, description = chosen.name, chosen.description
        else:
            name = " ".join(display_name.split())[: personas.MAX_NAME_CHARS] or personas.default_name(player_id)
            description = ""
        await personas.set_story_persona(tx, chat_id, player_id, name, description)

    async def leave_player(self, chat_id: str, player_id: str) -> bool:
        """`player_id` no longer plays in the story (they left, or were removed): their lines are
        refused from now on, and they keep what they witnessed.  False if they were not playing;
        OwnerCannotLeaveError for the story's owner."""
        async with self.db.transaction() as tx:
            chat = await world.require_chat(tx, chat_id)
            if player_id == chat.owner:
                raise OwnerCannotLeaveError(player_id)
            if not await players.is_playing(tx, chat_id, player_id):
                return False
            await players.leave(tx, chat_id, player_id)
            return True

    async def _player(self, chat_id: str, player: str | None) -> str:
        """The player an action is for: `player`, or the story's owner."""
        return player if player is not None else (await world.require_chat(self.db, chat_id)).owner

    async def _usable(self, character_id: str, players: list[str]) -> world.Character:
        """The character `character_id`, if one of `players` may use it; else UnknownCharacterError,
        as for a character that does not exist."""
        character = await world.get_character(self.db, character_id)
        if character is None or not any(character.usable_by(p) for p in players):
            raise UnknownCharacterError(character_id)
        return character

    async def create_chat(
        self, *, owner: str, host: str, guest: str | None = None, title: str | None = None,
        starts_at: datetime | None = None, scenario: str | None = None,
    ) -> ChatInfo:
        """A new story.  `scenario` is the story's own, shared by everyone present (else the
        host's card's).  It begins at `starts_at`, else when its opening (that scenario and the
        host's greeting) says, read by one classifier call (purpose "opening_time", made only
        when the opening has a word about time), else at `STORY_START`.  InvalidInputError for
        an unreadable or overlong scenario, InvalidTimeError for a start after the year 9000;
        UnknownCharacterError for a host or guest the owner may not use (another player's own)."""
        host_character = await self._usable(host, [owner])
        guest_character = await self._usable(guest, [owner]) if guest else None
        if guest_character is not None and guest_character.character_id == host_character.character_id:
            raise InvalidCastError(f"{host_character.name} cannot be their own guest")
        scenario = check_scenario(scenario or "")
        if starts_at is not None and starts_at.year >= LAST_START_YEAR:
            raise InvalidTimeError(f"a story must begin before the year {LAST_START_YEAR}")
        title = title or host_character.name + (f" & {guest_character.name}" if guest_character else "")
        if starts_at is None:
            player = await personas.get_persona(self.db, owner)
            starts_at = await story_start(self.llm, host_character, scenario, player.name)
        chat = await world.create_chat(
            self.db, owner=owner, host=host, guest=guest, title=title, clock=starts_at.replace(tzinfo=None, microsecond=0),
            scenario=scenario,
        )
        await import_card_books(self.db, chat.chat_id, [c for c in (host_character, guest_character) if c is not None])
        return ChatInfo(
            chat.chat_id, owner, chat.title, host, host_character.name,
            guest, guest_character.name if guest_character else None, chat.clock,
        )

    async def greeting(self, chat_id: str) -> TurnUpdate:
        """The host's first message, recorded once as the chat's opening turn."""
        cast = await load_cast(self.db, chat_id)
        host = cast.host
        text = greeting_text(host, cast) or f"*{host.name} looks up.* Oh, hello."
        async with self.db.transaction() as tx:
            await scenes.ensure_scene(tx, cast)
            turn, _ = await turn_state.record_turn(
                tx, chat_id, "assistant", host.character_id, text, source_id=GREETING_SOURCE
            )
        return TurnUpdate(host.name, host.character_id, turn.text, done=True, turn_id=turn.turn_id)

    # -- characters come and go -----------------------------------------------------------

    async def cast(self, chat_id: str) -> list[CharacterInfo]:
        """The characters present in the story: its host first, then in the order they came."""
        return [CharacterInfo.of(c) for c in (await load_cast(self.db, chat_id)).characters]

    async def invite_character(
        self, chat_id: str, character: str, *, player: str | None = None
    ) -> AsyncGenerator[TurnUpdate, None]:
        """`character` (id or name) comes into the story: present from now on (a witness of what
        follows, of nothing before), with its card's lorebook; its entrance streams like a guest's
        (a V3 card's group greeting, when it has one, sets its voice).  It must be one the story's
        owner, or the inviting `player`, may use.  UnknownCharacterError for no such character (or
        one neither may use); InvalidCastError when it is present already or the story holds
        `MAX_CHARACTERS`.  A model error is raised after it came in (it is present, without an entrance)."""
        chat = await world.require_chat(self.db, chat_id)
        chosen = await resolve_character(self.db, character, usable_by=[chat.owner, *([player] if player else [])])
        async with aclosing(self.cast_changes.invite(chat_id, chosen)) as updates:
            async for update in updates:
                yield update

    async def dismiss_character(self, chat_id: str, character: str) -> CharacterInfo:
        """`character` (id or name) leaves the story; it keeps what it witnessed (and may come back).
        InvalidCastError when it is not present or is the story's host (who stays: a story always
        has a character); UnknownCharacterError for no such character."""
        cast = await load_cast(self.db, chat_id)
        wanted = character.strip().lower()
        chosen = next((c for c in cast.characters if wanted in (c.character_id.lower(), c.name.lower())), None)
        chosen = chosen or await resolve_character(self.db, character)
        await self.cast_changes.dismiss(chat_id, chosen)
        return CharacterInfo.of(chosen)

    async def guest_entrance(self, chat_id: str) -> TurnUpdate | None:
        """In a two-character story, the guest's entrance after the host's greeting: written
        once, in the story's scene, from the guest's own greeting (its voice, not its place);
        None when there is no guest.  Model failures raise `core.llm.LLMError` (nothing recorded)."""
        last = None
        async with aclosing(self.pipeline.entrance(chat_id, GUEST_ENTRANCE_SOURCE)) as updates:
            async for update in updates:
                last = update
        return last

    async def post_turn(
        self, chat_id: str, text: str, source_id: str, *, player: str | None = None, replying_to: str | None = None
    ) -> AsyncGenerator[TurnUpdate, None]:
        """Record `player`'s line (the owner's, with None) and stream the answering character's reply;
        each update of the reply names that player (`answering`).  NotAPlayerError (nothing
        written) when `player` does not play in the story and the line is not in it yet.

        With a guest present, the character the line names, or the one whose message it
        replies to (`replying_to`, a character id), or the last speaker answers; one
        classifier request decides only a line that names both or may ask for a skip
        or a scene close (the host on any doubt).  If `source_id` was posted before, the reply already made (its
        shown swipe) is yielded as done, or, if no reply was recorded (the model
        failed), one is generated now; never twice.  Model failures raise
        `core.llm.LLMError` after the player's turn is recorded.  After `cancel`,
        the stream ends with a done update marked truncated.  A line that is empty,
        unreadable or longer than `MAX_LINE_CHARS` raises InvalidInputError and
        nothing is written (ReservedSourceIdError for a source id of the engine's own).
        A line wrapped in double parentheses is out of character: one brief answer of
        kind "ooc", and nothing is recorded.  Answering a line an edit rewrote writes its
        reply in place.  The skip or scene close a line asks for follows its reply.
        """
        check_line(text)
        check_source_id(source_id)
        author = await self._player(chat_id, player)
        updates = self.pipeline.post_turn(chat_id, text, source_id, player=author, replying_to=replying_to)
        async with aclosing(updates) as stream:
            async for update in stream:
                yield update

    async def post_round(self, chat_id: str, lines: Sequence[RoundLine]) -> AsyncGenerator[TurnUpdate, None]:
        """The players' lines of a round, each recorded once (idempotent by source id, like
        `post_turn`), answered by ONE reply (routed like a line: by the names the lines call, at
        most one classifier call) that speaks to each player; its updates name every player it
        answers (`answering`).  Posting the round, or any line of it, again returns that reply.
        InvalidInputError (nothing written) for no line, a source id twice, a line refused as it
        stands, or an out-of-character line among others (it is answered on its own);
        NotAPlayerError for a new line by someone who does not play in the story."""
        if not lines:
            raise InvalidInputError("a round needs at least one line")
        if len({line.source_id for line in lines}) != len(lines):
            raise InvalidInputError("each line of a round has a source id of its own")
        round_lines = []
        for line in lines:
            check_line(line.text)
            check_source_id(line.source_id)
            if len(lines) > 1 and is_out_of_character(line.text):
                raise InvalidInputError("a line in double parentheses is out of character: it is answered on its own")
            round_lines.append(Line(await self._player(chat_id, line.player), line.text, line.source_id))
        async with aclosing(self.pipeline.post_lines(chat_id, round_lines)) as updates:
            async for update in updates:
                yield update

    async def receive_line(self, chat_id: str, text: str, source_id: str, *, player: str | None = None) -> bool:
        """Take `player`'s line (the owner's, with None), durably, as owed an answer; False if this
        source id was taken before (received, or answered).  Never waits for the chat's turn in
        progress, so an adapter may call it as soon as it sees the line.  InvalidInputError for a
        line that is empty, unreadable or too long, ReservedSourceIdError for a source id of the
        engine's own, NotAPlayerError for someone who does not play in the story (nothing
        written); ChatNotFoundError for no such chat."""
        check_line(text)
        check_source_id(source_id)
        author = await self._player(chat_id, player)
        if await lines.is_known(self.db, chat_id, source_id):
            return False
        await require_playing(self.db, chat_id, author)
        return await lines.receive_line(self.db, chat_id, source_id, text, author)

    async def line_answered(self, chat_id: str, source_id: str) -> None:
        """The player has been shown the answer to a received line (its reply, or a notice)."""
        await lines.answer_line(self.db, chat_id, source_id)

    async def owed_lines(self) -> list[OwedLine]:
        """Lines received whose answer the player has not been shown, oldest first, each with the
        player who said it (after a restart: answer each with `post_turn`, which returns a reply
        already made)."""
        return await lines.owed_lines(self.db)

    async def regenerate_target(self, chat_id: str) -> RegenerateTarget:
        """What `regenerate` would replace or answer now; NothingToRegenerateError (with
        words for the player) when there is nothing to redo."""
        exchange = await exchange_to_regenerate(self.db, chat_id)
        if exchange.replaced is not None:
            return RegenerateTarget(exchange.replaced.turn_id, exchange.replaced.speaker, None)
        line = exchange.user_turn
        return RegenerateTarget(None, None, line.source_id if line is not None else None)

    async def regenerate(self, chat_id: str) -> AsyncGenerator[TurnUpdate, None]:
        """A new swipe of the chat's last reply, streamed like `post_turn`.

        The last shown assistant turn is superseded (it stays as a sibling) and what
        it caused is rolled back by compensating events (memories retracted, edges
        restored, world-event transitions reverted), atomically with recording the
        new reply.  If the last turn is the player's (its reply failed), a reply is
        generated for it.  On a model error nothing changes and the error is raised.
        """
        async with aclosing(self.pipeline.regenerate(chat_id)) as updates:
            async for update in updates:
                yield update

    async def cancel(self, chat_id: str) -> bool:
        """Stop the chat's in-flight generation (post_turn or regenerate); False if none runs.

        Returns at once; the consumer's stream then ends with a final update
        `done=True, truncated=True` holding the partial text, which is recorded as
        the reply (marked truncated).  No task of the generation is left running.
        """
        return self.pipeline.cancel(chat_id)

    # -- fixing a turn ------------------------------------------------------------------

    async def edit_line(self, chat_id: str, source_id: str, text: str, *, player: str | None = None) -> Rewound:
        """The story's latest line `source_id`, `player`'s (the owner's, with None; NotYourLineError
        for another's), now reads `text`: everything after it (and what the
        line moved: a scene it closed opens again) is taken back, exactly, and the line is owed an
        answer again: answer it with `post_turn(chat_id, text, source_id)`, which writes its reply
        in place.  NotLatestLineError for an older line, TurnNotFoundError for no such line (or one
        taken back), InvalidInputError for text refused as it stands (an out-of-character line is
        a message of its own); nothing is written then."""
        check_line(text)
        check_source_id(source_id)
        if is_out_of_character(text):
            raise InvalidInputError("a line in double parentheses is out of character: send it as a new message")
        author = await self._player(chat_id, player)
        return await self._rewound(chat_id, await self.control.edit_line(chat_id, source_id, text, author), 1)

    async def take_back_line(self, chat_id: str, source_id: str, *, player: str | None = None) -> Rewound:
        """The story's latest line `source_id`, `player`'s (the owner's, with None), and everything
        after it leave the story, with what they caused (a deleted message).  NotLatestLineError for
        an older line, NotYourLineError for another player's, TurnNotFoundError for anything that is
        not a line of the story (nothing written)."""
        check_source_id(source_id)
        author = await self._player(chat_id, player)
        return await self._rewound(chat_id, await self.control.take_back_line(chat_id, source_id, author), 1)

    async def rewind(self, chat_id: str, steps: int = 1) -> Rewound:
        """Take back the last `steps` steps of the story: a step is the time skip or scene close the
        latest line asked for, when there is one, else that line with everything after it.
        NothingToRewindError when no line of the player's is left; InvalidInputError for fewer than 1."""
        if steps < 1:
            raise InvalidInputError("say how many steps to take back: 1 or more")
        done, taken = await self.control.rewind(chat_id, steps)
        return await self._rewound(chat_id, done, taken)

    async def _rewound(self, chat_id: str, done: TakenBack, steps: int) -> Rewound:
        lines = tuple(t.source_id for t in done.lines if t.source_id)
        return Rewound(tuple(done.turn_ids), lines, steps, bool(done.scenes_reopened), await self.chat_clock(chat_id))

    async def takes(self, chat_id: str) -> Takes:
        """The takes of the newest reply; NothingToRegenerateError when there is no reply to have takes."""
        shown, takes = await self.control.takes(chat_id)
        cast = await load_cast(self.db, chat_id)
        number = next(i for i, t in enumerate(takes, start=1) if t.turn_id == shown.turn_id)
        return Takes(shown.turn_id, number, len(takes), cast.name_of(shown.speaker))

    async def show_take(self, chat_id: str, number: int) -> TurnUpdate:
        """Show take `number` (1-based) of the newest reply instead of the one shown: the story goes on
        from it exactly as if only it had been written (what the shown take caused is taken back,
        what the chosen one causes derived again).  NoSuchTakeError for a number it does not have."""
        return await self.control.show_take(chat_id, number)

    async def continue_reply(self, chat_id: str) -> AsyncGenerator[TurnUpdate, None]:
        """The newest reply goes on from where it stopped, streamed like `post_turn` (each update holds
        the whole reply so far; the same turn grows).  NothingToContinueError when the story's last turn
        is not a character's reply; `cancel` stops it (what was added is kept); a model error changes nothing."""
        async with aclosing(self.control.continue_reply(chat_id)) as updates:
            async for update in updates:
                yield update

    async def note(self, chat_id: str) -> str:
        """The story's standing note ("" when it has none)."""
        return (await world.require_chat(self.db, chat_id)).note

    async def set_note(self, chat_id: str, text: str) -> str:
        """Give the story a standing note for the model (its Author's Note), placed near the end of
        every reply prompt; "" removes it.  It never enters memory.  InvalidInputError for text that
        is unreadable or longer than `MAX_NOTE_CHARS`."""
        text = check_note(text)
        await world.require_chat(self.db, chat_id)
        await world.set_note(self.db, chat_id, text)
        return text

    # -- story actions ----------------------------------------------------------------

    async def chat_clock(self, chat_id: str) -> datetime:
        return await world.get_clock(self.db, chat_id)

    async def skip(self, chat_id: str, duration: timedelta) -> SkipResult:
        """Elide `duration` of story time with a short narration (purpose "skip"); the clock moves.

        InvalidTimeError for a duration that is not positive; a model error propagates
        and nothing changes."""
        async with self.pipeline.exclusive(chat_id):
            cast = await load_cast(self.db, chat_id)
            target = await timeskip.skip_target(self.db, chat_id, duration)
            result, _ = await timeskip.move_clock(self.db, self.llm, cast, target, reason=f"skip {duration}",
                                                  context_tokens=self.pipeline.budget_tokens)
            return result

    async def jump(self, chat_id: str, when: datetime) -> SkipResult:
        """Set the story clock to `when` with a short narration; InvalidTimeError if not in the future."""
        async with self.pipeline.exclusive(chat_id):
            cast = await load_cast(self.db, chat_id)
            result, _ = await timeskip.move_clock(self.db, self.llm, cast, when, reason="jump",
                                                  context_tokens=self.pipeline.budget_tokens)
            return result

    async def close_scene(self, chat_id: str) -> SceneCloseResult | None:
        """Close the open main scene: one summary per present character, from its own point of
        view (with "Key quotes"), then plot-thread detection.  Summaries an earlier close still
        owes (the model failed) are written too; with no scene open, only those.  None if there
        was nothing to close or write.  A model error propagates after the scene is closed and
        what could be written was: the missing summaries stay owed, for the next close or turn."""
        async with self.pipeline.exclusive(chat_id):
            await world.require_chat(self.db, chat_id)
            closing = await scenes.close_open_scene(self.db, chat_id)
            written = await scenes.summarize_owed(self.db, self.llm, chat_id, context_tokens=self.pipeline.budget_tokens)
            if closing is not None:
                return next((r for r in written if r.scene_id == closing.scene_id), SceneCloseResult(closing.scene_id, {}))
            return written[-1] if written else None

    async def list_threads(self, chat_id: str) -> list[ThreadInfo]:
        await world.require_chat(self.db, chat_id)
        return await reports.thread_infos(self.db, chat_id)

    async def list_world_events(self, chat_id: str) -> list[WorldEventInfo]:
        await world.require_chat(self.db, chat_id)
        return await reports.world_event_infos(self.db, chat_id)

    async def plan_event(self, chat_id: str, what: str, when: datetime) -> WorldEventInfo:
        """Plan a world event due at story time `when` (InvalidTimeError if before the chat clock)."""
        clock = await world.get_clock(self.db, chat_id)
        if when.replace(tzinfo=None, microsecond=0) < clock:
            raise InvalidTimeError(f"{when:%Y-%m-%d %H:%M} is before the chat clock {clock:%Y-%m-%d %H:%M}")
        check_readable(what, "The event")
        event = await plans.plan_world_event(self.db, chat_id, what.strip() or "Something", due_at=when)
        return reports.world_event_info(event)

    async def meanwhile(self, chat_id: str, a: str, b: str, premise: str = "") -> AsyncGenerator[TurnUpdate, None]:
        """A short off-screen scene between characters `a` and `b` (ids or names), streamed line by
        line (kind "reply"); remembered by those two only; ends after the digest is queued.
        UnknownCharacterError / InvalidCastError for a bad cast; `cancel` stops it."""
        check_readable(premise, "The premise")
        async with self.pipeline.exclusive(chat_id, cancellable=True) as control:
            lines = run_meanwhile(self.db, self.llm, chat_id, a, b, premise, control, self.pipeline.budget_tokens)
            async with aclosing(lines) as written:
                async for line, done in written:
                    yield TurnUpdate(line.speaker.name, line.speaker.character_id, line.text, done, line.truncated)

    async def _witness(self, chat_id: str, character: str, player: str | None) -> str:
        """Whose memory `character` names: a character (id or name), or with "you" (or "me") the
        asking `player` (the owner, with None)."""
        asker = await self._player(chat_id, player)
        if (me := reports.player_or(character, asker)) is not None:
            return me
        cast = await load_cast(self.db, chat_id)
        return (await resolve_character(self.db, character, prefer=cast.characters)).character_id

    async def search_memory(
        self, chat_id: str, character: str, query: str, limit: int = 5, *, player: str | None = None
    ) -> list[MemoryInfo]:
        """What `character` (id, name, or "you": the asking `player`) witnessed and matches `query`, best first."""
        check_readable(query, "The query")
        who = await self._witness(chat_id, character, player)
        return await reports.search_memory_infos(self.db, chat_id, who, query, limit)

    async def recent_memories(
        self, chat_id: str, character: str, limit: int = 10, *, player: str | None = None
    ) -> list[MemoryInfo]:
        """What `character` (id, name, or "you": the asking `player`) remembers most recently, oldest first."""
        who = await self._witness(chat_id, character, player)
        return await reports.recent_memory_infos(self.db, chat_id, who, limit)

    async def forget_memory(
        self, chat_id: str, character: str, memory_id: int, *, player: str | None = None
    ) -> MemoryInfo:
        """`character` (id, name, or "you": the asking `player`) no longer remembers memory
        `memory_id`: an event in the story's log, undone by nothing; whoever else witnessed it still
        remembers it.  Returns what was forgotten; MemoryNotFoundError when the character does not
        remember it (any more)."""
        who = await self._witness(chat_id, character, player)
        memory = await memory_state.require_memory(self.db, memory_id)
        if memory.chat_id != chat_id or memory.retracted or who not in memory.witnesses:
            raise MemoryNotFoundError(memory_id, f"{character!r} does not remember it")
        await memory_state.forget_memory(self.db, chat_id, memory_id, who)
        return reports.memory_infos([memory], await world.get_clock(self.db, chat_id))[0]

    async def status(self, chat_id: str, *, player: str | None = None) -> ChatStatus:
        """The story at a glance; its persona is `player`'s (the owner's, with None)."""
        return await reports.chat_status(self.db, await load_cast(self.db, chat_id), await self._player(chat_id, player))

    async def context(self, chat_id: str) -> ContextReport:
        """What the host's next prompt would hold, section by section (estimated tokens, items)."""
        cast = await load_cast(self.db, chat_id)
        prompt = await assemble_prompt(self.db, cast, cast.host, user_turn=None, budget_tokens=self.pipeline.budget_tokens)
        return reports.context_report(cast.host.name, prompt)

    async def next_prompt(
        self, chat_id: str, pending_line: str = "(your next line)", *, player: str | None = None
    ) -> NextPrompt:
        """The exact request the host's next reply would send, with `pending_line` as `player`'s line."""
        cast = await load_cast(self.db, chat_id)
        prompt = await assemble_prompt(self.db, cast, cast.host, user_turn=None, pending_line=pending_line,
                                       pending_player=await self._player(chat_id, player),
                                       budget_tokens=self.pipeline.budget_tokens)
        replies = self.pipeline.replies
        return NextPrompt(cast.host.name, prompt.messages, replies.max_tokens,
                          stop_sequences(cast, cast.host, replies), prompt.total_tokens, prompt.budget_tokens)

    # -- reading a whole story ----------------------------------------------------------

    async def export_story(self, chat_id: str) -> StoryExport:
        """The story as the player saw it: cast (present now), shown turns in order (no superseded swipes,
        no off-screen meanwhile lines), main scenes with their per-POV summaries, and
        plot threads.  Reads only; ChatNotFoundError for an unknown chat."""
        chat = await world.require_chat(self.db, chat_id)
        cast_ids = await world.cast_ids(self.db, chat_id)
        characters = {c.character_id: c for c in await world.list_characters(self.db)}
        cast = tuple(
            CharacterInfo.of(characters[cid]) for cid in cast_ids if cid in characters
        )

        story_cast = await load_cast(self.db, chat_id)

        def name_of(speaker: str) -> str:
            if story_cast.is_player(speaker):
                return story_cast.name_of(speaker)
            character = characters.get(speaker)
            return character.name if character else speaker

        turns = tuple(
            ExportedTurn(t.role, t.speaker_name or name_of(t.speaker), t.text, t.story_time, t.scene_id, t.truncated)
            for t in await turn_state.shown_story_turns(self.db, chat_id)
        )
        scenes_out = []
        for scene in await world.list_scenes(self.db, chat_id):
            if scene.kind != "main" or scene.withdrawn:
                continue
            summaries = tuple(
                (name_of(m.pov or chat.owner), m.text) for m in await memory_state.scene_summaries(self.db, scene.scene_id)
            )
            scenes_out.append(ExportedScene(scene.scene_id, scene.title, scene.started_at, scene.closed_at, summaries))
        threads = tuple(await reports.thread_infos(self.db, chat_id))
        return StoryExport(chat_id, chat.title, chat.owner, chat.clock, cast, turns, tuple(scenes_out), threads,
                           tuple(await self.players(chat_id)))

    # -- the story's lorebook -------------------------------------------------------------

    async def import_lore(self, chat_id: str, data: bytes, filename: str) -> LoreImportResult:
        """Add a SillyTavern world info file (its bytes and file name) to the story's lorebook;
        a file imported again under the same name replaces the book it gave before.  Entries
        are common knowledge unless their character filter names who knows them.
        LoreImportError for anything that is not world info (nothing written); ChatNotFoundError."""
        return await import_world_info(self.db, chat_id, data, filename)

    async def lore(self, chat_id: str) -> list[LoreEntryInfo]:
        """Every lorebook entry of the story (its cards' books and imported world info), book by
        book, with who knows each."""
        await world.require_chat(self.db, chat_id)
        return await lore_infos(self.db, chat_id)


def check_player_id(player_id: str) -> str:
    """The id, checked to be one a player can have: InvalidInputError for an empty or overlong one,
    one with control characters, or the old single player's "you"."""
    player_id = player_id.strip()
    if not player_id or len(player_id) > MAX_PLAYER_ID_CHARS or not player_id.isprintable():
        raise InvalidInputError(f"a player id is 1 to {MAX_PLAYER_ID_CHARS} printable characters")
    if player_id.lower() == LEGACY_PLAYER:
        raise InvalidInputError(f"{player_id!r} cannot be a player's id")
    return player_id


def check_source_id(source_id: str) -> None:
    """ReservedSourceIdError for a source id the engine keeps for its own turns."""
    if is_reserved_source(source_id):
        raise ReservedSourceIdError(f"{source_id!r} is a source id the engine keeps for its own turns")
