"""`!commands`: a registry of what each room accepts, each with its usage line.

A command runs in its room's worker and returns what to send; a bad command or
bad arguments get a short error with the usage line, never silence. Lobby (and
invite-room) commands start stories; story-room commands act on that story.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from adapter.matrix.context import BotContext
from adapter.matrix.failures import explain, log_failure
from adapter.matrix.outgoing import OutgoingEvent, SendMessage, txn_id_for
from adapter.matrix.render import notice, room_link
from adapter.matrix.store import RoomMeta, get_user_meta
from core.engine import CharacterInfo

log = logging.getLogger(__name__)

LOBBY_ROOMS = frozenset({"lobby", "invite"})
STORY_ROOMS = frozenset({"chat"})


class CommandError(Exception):
    """Bad arguments: the message says what is wrong; the usage line is added by the caller."""


@dataclass(frozen=True)
class Invocation:
    ctx: BotContext
    meta: RoomMeta
    name: str
    args: str
    source_event_id: str
    sender: str
    reply_to: str | None = None  # the event this command line replies to, if any

    def reply(self, text: str, purpose: str = "command") -> list[OutgoingEvent]:
        return [SendMessage(self.meta.room_id, notice(text), txn_id_for(self.source_event_id, purpose))]


CommandHandler = Callable[[Invocation], Awaitable[list[OutgoingEvent]]]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    rooms: frozenset[str]
    handler: CommandHandler


REGISTRY: dict[str, Command] = {}


def command(name: str, usage: str, summary: str, rooms: frozenset[str]) -> Callable[[CommandHandler], CommandHandler]:
    def register(handler: CommandHandler) -> CommandHandler:
        REGISTRY[name] = Command(name, usage, summary, rooms, handler)
        return handler

    return register


def help_text(room_type: str) -> str:
    where = "this story room" if room_type in STORY_ROOMS else "the Lobby"
    lines = [f"**Commands in {where}:**", ""]
    lines += [f"- `{c.usage}`: {c.summary}" for c in REGISTRY.values() if room_type in c.rooms]
    if room_type in STORY_ROOMS:
        lines += ["", "Anything else you type is your line in the story. React 🔄 to a reply to redo it, ⏹ to stop it."]
    return "\n".join(lines)


async def handle_command(
    ctx: BotContext, meta: RoomMeta, text: str, source_event_id: str, sender: str, reply_to: str | None = None
) -> list[OutgoingEvent]:
    """Decide the answer to one `!command` line."""
    name, _, args = text[1:].strip().partition(" ")
    name = name.lower()
    invocation = Invocation(ctx, meta, name, args.strip(), source_event_id, sender, reply_to)
    found = REGISTRY.get(name)
    if found is None:
        close = difflib.get_close_matches(name, [c.name for c in REGISTRY.values() if meta.room_type in c.rooms], n=1, cutoff=0.6)
        guess = f" Did you mean `!{close[0]}`?" if close else ""
        return invocation.reply(f"Unknown command `!{name}`.{guess}\n\n{help_text(meta.room_type)}")
    if meta.room_type not in found.rooms:
        elsewhere = "a story room" if found.rooms == STORY_ROOMS else "the Lobby"
        return invocation.reply(f"`!{name}` works in {elsewhere}, not here. Usage: `{found.usage}`")
    try:
        return await found.handler(invocation)
    except CommandError as exc:
        return invocation.reply(f"{exc}\n\nUsage: `{found.usage}`")
    except Exception as exc:  # noqa: BLE001  (every command gets an answer, whatever went wrong)
        log_failure(f"!{name}", exc, {"room_id": meta.room_id, "chat_id": meta.chat_id})
        return invocation.reply(explain(exc, retry=f"Try `!{name}` again."), purpose="command-error")


# --- the Lobby ------------------------------------------------------------------------


@command("help", "!help", "what you can do here", LOBBY_ROOMS | STORY_ROOMS)
async def _help(inv: Invocation) -> list[OutgoingEvent]:
    return inv.reply(help_text(inv.meta.room_type))


@command("characters", "!characters", "who you can meet", LOBBY_ROOMS | STORY_ROOMS)
async def _characters(inv: Invocation) -> list[OutgoingEvent]:
    characters = await inv.ctx.engine.list_characters()
    lines = ["**Characters:**", ""]
    lines += [f"- **{c.name}** (`{c.character_id}`): {first_sentence(c.description)}" for c in characters]
    where = " in the Lobby" if inv.meta.room_type in STORY_ROOMS else ""
    lines += ["", f"Start a story{where} with `!new <character>` or `!new <character> with <character>`."]
    return inv.reply("\n".join(lines))


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


@command("new", "!new [character] [with character]", "start a new story room in your Space", LOBBY_ROOMS)
async def _new(inv: Invocation) -> list[OutgoingEvent]:
    from adapter.matrix.handlers.auth import ensure_onboarded
    from adapter.matrix.spaces import create_story_room

    characters = await inv.ctx.engine.list_characters()
    host_text, _, guest_text = inv.args.partition(" with ")
    if inv.args.lower().startswith("with "):
        host_text, guest_text = "", inv.args[5:]
    host = find_character(characters, host_text) if host_text.strip() else characters[0]
    guest = find_character(characters, guest_text) if guest_text.strip() else None
    if guest is not None and guest.character_id == host.character_id:
        raise CommandError(f"{host.name} cannot be their own guest.")
    async with inv.ctx.user_locks.hold(inv.meta.matrix_user_id):
        user = await get_user_meta(inv.ctx.store, inv.meta.matrix_user_id)
        space_id = user.space_id if user and user.space_id else await ensure_onboarded(inv.ctx, inv.meta.matrix_user_id, inv.meta.room_id)
        room_id = await create_story_room(
            inv.ctx, inv.meta.matrix_user_id, space_id, host.character_id, guest.character_id if guest else None, notify_room=inv.meta.room_id
        )
    cast = host.name + (f" and {guest.name}" if guest else "")
    return inv.reply(f"Your new story with {cast} is ready in your Space: {room_link(room_id, inv.ctx.server_name, cast)}")


@command("import", "!import", "reply with this to an uploaded character card (.png or .json, V2 or V3)", LOBBY_ROOMS)
async def _import(inv: Invocation) -> list[OutgoingEvent]:
    from adapter.matrix.avatars import keep_card_face
    from adapter.matrix.media import MediaError, fetch_uploaded_file
    from core.errors import CardImportError

    if inv.reply_to is None:
        raise CommandError("Upload a card, then reply to it with `!import`.")
    try:
        _name, data = await fetch_uploaded_file(inv.ctx.client, inv.meta.room_id, inv.reply_to)
        character = await inv.ctx.engine.import_character(data)
    except MediaError as exc:
        raise CommandError(str(exc)) from exc
    except CardImportError as exc:
        raise CommandError(f"That is not a character card I can read: {exc}") from exc
    keep_card_face(inv.ctx, character.character_id, data)
    return inv.reply(f"Imported **{character.name}** (`{character.character_id}`). Start a story with `!new {character.character_id}`.")


# --- a story room ---------------------------------------------------------------------


@command("regen", "!regen", "redo the last reply (also: react 🔄 to it)", STORY_ROOMS)
async def _regen(inv: Invocation) -> list[OutgoingEvent]:
    from adapter.matrix.handlers.messages import run_regenerate

    if inv.args:
        raise CommandError("`!regen` takes no arguments.")
    await run_regenerate(inv.ctx, inv.meta, inv.source_event_id)
    return []


@command("stop", "!stop", "stop the reply being written (also: react ⏹ to it)", STORY_ROOMS)
async def _stop(inv: Invocation) -> list[OutgoingEvent]:
    assert inv.meta.chat_id is not None
    if await inv.ctx.engine.cancel(inv.meta.chat_id):
        return []  # the reply itself ends, marked as stopped
    return inv.reply("Nothing is being written right now.")
