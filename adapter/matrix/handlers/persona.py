"""`!persona`: the player's persona (the name `{{user}}` stands for, and a short description).

Anywhere (the Lobby or a story room): `!persona` shows it, `!persona Name: description` sets
both, `!persona Name` sets the name and keeps the description.  Until a player sets one, the
persona is their Matrix display name (read from the room state the bot already has, no
request), given at onboarding, else the localpart of their id.
"""

from __future__ import annotations

from adapter.matrix.context import BotContext
from adapter.matrix.handlers.commands import CommandError, CommandResult, Invocation, command_list
from adapter.matrix.routing import LOBBY_ROOMS, STORY_ROOMS
from core.errors import InvalidPersonaError


def display_name_of(ctx: BotContext, user_id: str, room_id: str | None) -> str:
    """`user_id`'s display name in `room_id` as the bot's sync state holds it ("" if unknown)."""
    room = ctx.client.rooms.get(room_id) if room_id else None
    user = room.users.get(user_id) if room is not None else None
    name = getattr(user, "display_name", None) or ""
    return "" if name == user_id else name


def _describe(name: str, description: str) -> str:
    return f"**{name}**" + (f": {description}" if description else " (no description yet)")


COMMANDS, command = command_list()


@command("persona", "!persona [name: description]", "who you are in your stories (`{{user}}`)", LOBBY_ROOMS | STORY_ROOMS)
async def _persona(inv: Invocation) -> list[CommandResult]:
    engine = inv.ctx.engine
    args = inv.args.strip()
    if not args:
        current = await engine.persona(inv.sender)
        return inv.reply(
            f"You play {_describe(current.name, current.description)}.\n\n"
            "Change it with `!persona Name: a short description`."
        )
    name, colon, description = args.partition(":")
    if not colon:
        description = (await engine.persona(inv.sender)).description
    try:
        persona = await engine.set_persona(inv.sender, name, description)
    except InvalidPersonaError as error:
        raise CommandError(str(error)) from error
    return inv.reply(f"You now play {_describe(persona.name, persona.description)}. "
                     "Characters know you by this name from your next line on.")
