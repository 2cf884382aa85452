"""`!persona`: the player's persona (the name `{{user}}` stands for, and a short description).

Anywhere (the Lobby or a story room): `!persona` shows it, `!persona Name: description` sets
both, `!persona Name` sets the name and keeps the description.  In the Lobby it is the persona
for new stories (a story keeps the one it began with); in a story room, that story's own, from
the next line on.  Until a player sets one, the persona is their Matrix display name (read
from the room state the bot already has, no request), given at onboarding, else the
localpart of their id.
"""

from __future__ import annotations

from adapter.matrix.context import BotContext
from adapter.matrix.handlers.commands import CommandError, CommandResult, Invocation, command_list
from adapter.matrix.room_types import LOBBY_ROOMS, STORY_ROOMS
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


@command("persona", "!persona [name: description]",
         "who you are (`{{user}}`): in the Lobby, in new stories; in a story room, in that story", LOBBY_ROOMS | STORY_ROOMS)
async def _persona(inv: Invocation) -> list[CommandResult]:
    engine = inv.ctx.engine
    args = inv.args.strip()
    story = inv.meta.chat_id if inv.meta.room_type in STORY_ROOMS else None
    where = "In this story" if story else "In new stories"
    if not args:
        current = await engine.persona(inv.sender, story)
        other = ("`!persona` in the Lobby sets it for new stories." if story
                 else "Each story keeps the persona it began with: `!persona` in a story room changes that story's.")
        return inv.reply(
            f"{where} you play {_describe(current.name, current.description)}.\n\n"
            f"Change it with `!persona Name: a short description`. {other}"
        )
    name, colon, description = args.partition(":")
    if not colon:
        description = (await engine.persona(inv.sender, story)).description
    try:
        persona = await engine.set_persona(inv.sender, name, description, chat_id=story)
    except InvalidPersonaError as error:
        raise CommandError(str(error)) from error
    if story:
        return inv.reply(f"In this story you now play {_describe(persona.name, persona.description)}. Characters "
                         "know you by this name from your next line on; your earlier lines keep the name you said them under.")
    return inv.reply(f"In new stories you now play {_describe(persona.name, persona.description)}. "
                     "A story you have begun keeps the persona it began with (`!persona` there changes it).")
