"""`!commands`: what a command is given, what it may answer, and the Lobby's commands.

A command runs in its room's turn and returns what to do: notices to send, or an
action for its room to perform (`StartStory` for `!new`, a story control such as `Redo` for
`!regen` or `Rewind` for `!rewind`); it sends
nothing itself. Bad arguments raise `CommandError`, which `registry.handle_command`
turns into the reason and the usage line. Each handler module lists its own commands
(`COMMANDS`); `adapter.matrix.handlers.registry` puts them in one explicit registry.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from adapter.errors import AdapterError
from adapter.matrix.avatars import keep_card_face
from adapter.matrix.context import BotContext
from adapter.matrix.media import MediaError, fetch_uploaded_file
from adapter.matrix.outgoing import OutgoingEvent, SendMessage, txn_id_for
from adapter.matrix.render import notice, room_link
from adapter.matrix.room_types import LOBBY_ROOMS, STORY_ROOMS
from adapter.matrix.routing import ContinueReply, Redo, Rewind, StoryControl, SwitchTake
from adapter.matrix.store import RoomMeta
from core import START_TIME_EXAMPLES, read_start_time
from core.engine import CharacterInfo
from core.errors import CardImportError, NothingToRegenerateError


class CommandError(AdapterError):
    """Bad arguments: the message says what is wrong; the usage line is added by the caller."""

    worded_for_player = True


@dataclass(frozen=True)
class StartStory:
    """`!new` decided: make a story room for the room's owner with this cast (and, if the
    player gave them, the story time it begins at and its own scenario)."""

    host_id: str
    guest_id: str | None
    cast: str  # "Host" or "Host and Guest", for the answer
    starts_at: datetime | None = None
    scenario: str | None = None


@dataclass(frozen=True)
class SetRounds:
    """`!rounds on|off` decided: the story room answers its players' lines together (or in turn)."""

    on: bool


@dataclass(frozen=True)
class BringIn:
    """`!invite <character>` decided: the character comes into the story, brought by `player`."""

    character_id: str
    name: str
    player: str


CommandResult = OutgoingEvent | StartStory | StoryControl | SetRounds | BringIn


@dataclass(frozen=True)
class Invocation:
    ctx: BotContext
    meta: RoomMeta
    name: str
    args: str
    source_event_id: str
    sender: str
    reply_to: str | None = None  # the event this command line replies to, if any
    mentions: tuple[str, ...] = ()  # the users the command line mentions (Element pills)

    def reply(self, text: str, purpose: str = "command") -> list[CommandResult]:
        return [SendMessage(self.meta.room_id, notice(text), txn_id_for(self.source_event_id, purpose))]


CommandHandler = Callable[[Invocation], Awaitable[list[CommandResult]]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    rooms: frozenset[str]
    handler: CommandHandler
    owner_only: bool = False  # in a story of several players, only its owner may use it


class CommandDecorator(Protocol):
    def __call__(self, name: str, usage: str, summary: str, rooms: frozenset[str], *, owner_only: bool = False
                 ) -> Callable[[CommandHandler], CommandHandler]: ...


def command_list() -> tuple[list[Command], CommandDecorator]:
    """A module's own list of commands, and the decorator that adds a handler to it."""
    commands: list[Command] = []

    def command(name: str, usage: str, summary: str, rooms: frozenset[str], *, owner_only: bool = False
                ) -> Callable[[CommandHandler], CommandHandler]:
        def add(handler: CommandHandler) -> CommandHandler:
            commands.append(Command(name, usage, summary, rooms, handler, owner_only))
            return handler

        return add

    return commands, command


COMMANDS, command = command_list()


# --- the Lobby ------------------------------------------------------------------------


@command("characters", "!characters", "who you can meet (the built-in characters, those shared, and those you imported)",
         LOBBY_ROOMS | STORY_ROOMS)
async def _characters(inv: Invocation) -> list[CommandResult]:
    characters = await inv.ctx.engine.list_characters(player=inv.sender)
    lines = ["**Characters:**", ""]
    lines += [f"- **{c.name}** (`{c.character_id}`){own_mark(c, inv.sender)}: {first_sentence(c.description)}" for c in characters]
    if inv.meta.room_type in STORY_ROOMS:
        lines += ["", "Bring one into this story with `!invite <character>`; start a story in the Lobby with `!new <character>`."]
    else:
        lines += ["", "Start a story with `!new <character>` or `!new <character> with <character>`."]
    if any(c.owner == inv.sender and not c.shared for c in characters):
        lines += ["_Yours_ are cards you imported, listed for you only: `!share <character>` in the Lobby lists one for everyone."]
    return inv.reply("\n".join(lines))


def own_mark(character: CharacterInfo, player: str) -> str:
    return ", _yours_" if character.owner == player and not character.shared else ""


def cast_first(cast: list[CharacterInfo], usable: list[CharacterInfo]) -> list[CharacterInfo]:
    """A story's cast, then the other characters a player may use, each once (who a name means)."""
    return list({c.character_id: c for c in [*cast, *usable]}.values())


def first_sentence(text: str, limit: int = 160) -> str:
    sentence = text.split(". ")[0].strip()
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


def find_character(characters: list[CharacterInfo], wanted: str) -> CharacterInfo:
    """Match by id, full name, or a unique start of a name or word in it (case-insensitive)."""
    key = wanted.strip().lower()
    if not key:
        raise CommandError("Name a character.")
    for character in characters:
        if key in (character.character_id.lower(), character.name.lower()):
            return character
    matches = [c for c in characters if any(word.startswith(key) for word in [c.name.lower(), *c.name.lower().split()])]
    if len(matches) == 1:
        return matches[0]
    names = ", ".join(f"`{c.character_id}`" for c in characters)
    if matches:
        raise CommandError(f"`{wanted}` could be {', '.join(c.name for c in matches)}: say which.")
    raise CommandError(f"No character called `{wanted}`. Known: {names} (see `!characters`).")


_SCENARIO_COLON = re.compile(r":(?=\s|$)")  # "11:40pm" holds a colon too, never followed by a space
_AT = re.compile(r"(?:^|\s)at(?:\s+|$)", re.IGNORECASE)


def new_story_parts(args: str) -> tuple[str, str | None, str | None]:
    """`!new`'s arguments split into the cast, the start time after ` at ` and the scenario
    after `: ` (None where not given): "wren with odile at dusk: a storm" ->
    ("wren with odile", "dusk", "a storm")."""
    colon = _SCENARIO_COLON.search(args)
    head, scenario = (args[:colon.start()], args[colon.end():].strip()) if colon else (args, None)
    at = _AT.search(head)
    cast, when = (head[:at.start()], head[at.end():].strip()) if at else (head, None)
    return cast.strip(), when, scenario


@command(
    "new", "!new [character] [with character] [at time] [: scenario]",
    "start a new story room in your Space, e.g. `!new wren at dusk: the lamps fail in a storm`", LOBBY_ROOMS,
)
async def _new(inv: Invocation) -> list[CommandResult]:
    cast_text, when_text, scenario = new_story_parts(inv.args)
    characters = await inv.ctx.engine.list_characters(player=inv.sender)
    host_text, _, guest_text = cast_text.partition(" with ")
    if cast_text.lower().startswith("with "):
        host_text, guest_text = "", cast_text[5:]
    host = find_character(characters, host_text) if host_text.strip() else characters[0]
    guest = find_character(characters, guest_text) if guest_text.strip() else None
    if guest is not None and guest.character_id == host.character_id:
        raise CommandError(f"{host.name} cannot be their own guest.")
    starts_at = None
    if when_text is not None:
        starts_at = read_start_time(when_text)
        if starts_at is None:
            what = f"`{when_text}` is not a time I can read" if when_text else "Say when the story begins after `at`"
            raise CommandError(f"{what}. A story's start looks like {START_TIME_EXAMPLES}.")
    if scenario is not None and not scenario:
        raise CommandError("Say the story's scenario after the colon, or leave the colon out.")
    cast = host.name + (f" and {guest.name}" if guest else "")
    return [StartStory(host.character_id, guest.character_id if guest else None, cast, starts_at, scenario)]


def story_ready_text(room_id: str, server_name: str, cast: str) -> str:
    return f"Your new story with {cast} is ready in your Space: {room_link(room_id, server_name, cast)}"


@command("import", "!import", "reply with this to an uploaded character card (.png or .json, V2 or V3): the character "
         "is yours, listed for you only until you `!share` it", LOBBY_ROOMS)
async def _import(inv: Invocation) -> list[CommandResult]:
    if inv.reply_to is None:
        raise CommandError("Upload a card, then reply to it with `!import`.")
    try:
        _name, data = await fetch_uploaded_file(inv.ctx.client, inv.meta.room_id, inv.reply_to)
        character = await inv.ctx.engine.import_character(data, owner=inv.sender)
    except MediaError as exc:
        raise CommandError(str(exc)) from exc
    except CardImportError as exc:
        raise CommandError(f"That is not a character card I can read: {exc}") from exc
    keep_card_face(inv.ctx, character.character_id, data)
    return inv.reply(f"Imported **{character.name}** (`{character.character_id}`), yours: listed for you only. Start a story "
                     f"with `!new {character.character_id}`; `!share {character.character_id}` lists it for everyone.")


@command("share", "!share <character>", "list a character you imported for everyone who uses the bot", LOBBY_ROOMS)
async def _share(inv: Invocation) -> list[CommandResult]:
    if not inv.args.strip():
        raise CommandError("Say which of your characters to share.")
    own = [c for c in await inv.ctx.engine.list_characters(player=inv.sender) if c.owner == inv.sender]
    if not own:
        raise CommandError("You have imported no character to share: upload a card and reply to it with `!import`.")
    chosen = find_character(own, inv.args)
    if chosen.shared:
        return inv.reply(f"**{chosen.name}** is shared already: everyone can meet them.")
    shared = await inv.ctx.engine.share_character(inv.sender, chosen.character_id)
    return inv.reply(f"**{shared.name}** is shared: everyone who uses the bot can meet them now (`!characters`).")


# --- a story room ---------------------------------------------------------------------


@command("regen", "!regen", "redo the last reply (also: react 🔄 to it)", STORY_ROOMS)
async def _regen(inv: Invocation) -> list[CommandResult]:
    if inv.args:
        raise CommandError("`!regen` takes no arguments.")
    return [Redo(inv.meta.room_id, inv.source_event_id)]


@command("stop", "!stop", "stop the reply being written (also: react ⏹ to it)", STORY_ROOMS)
async def _stop(inv: Invocation) -> list[CommandResult]:
    assert inv.meta.chat_id is not None
    if await inv.ctx.engine.cancel(inv.meta.chat_id):
        return []  # the reply itself ends, marked as stopped
    return inv.reply("Nothing is being written right now.")


def _count(args: str, what: str) -> int | None:
    """A positive whole number given as the argument (None when none is given)."""
    if not args.strip():
        return None
    if not args.strip().isdigit() or int(args) < 1:
        raise CommandError(f"`{args.strip()}` is not {what}: give a whole number from 1 up.")
    return int(args)


@command("take", "!take [n]", "show take n of the newest reply in its place (also: react ◀ ▶ to it); "
         "with no number, which take is shown", STORY_ROOMS)
async def _take(inv: Invocation) -> list[CommandResult]:
    number = _count(inv.args, "a take number")
    if number is not None:
        return [SwitchTake(inv.meta.room_id, inv.source_event_id, number=number)]
    try:
        assert inv.meta.chat_id is not None
        takes = await inv.ctx.engine.takes(inv.meta.chat_id)
    except NothingToRegenerateError as exc:
        return inv.reply(str(exc))
    return inv.reply(f"{takes.speaker_name}'s newest reply shows take {takes.shown} of {takes.count}. "
                     "React ◀ ▶ to it, or send `!take <n>`, to show another; 🔄 writes a new one.")


@command("continue", "!continue", "the newest reply goes on from where it stopped (also: react ⏩ to it)", STORY_ROOMS)
async def _continue(inv: Invocation) -> list[CommandResult]:
    if inv.args:
        raise CommandError("`!continue` takes no arguments.")
    return [ContinueReply(inv.meta.room_id, inv.source_event_id)]


@command("rewind", "!rewind [n]", "take back your last n lines and what followed (1 unless you say); a skip or "
         "scene close your last line asked for goes first", STORY_ROOMS)
async def _rewind(inv: Invocation) -> list[CommandResult]:
    steps = _count(inv.args, "a number of steps") or 1
    return [Rewind(inv.meta.room_id, inv.source_event_id, steps)]
