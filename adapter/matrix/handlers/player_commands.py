"""Story-room commands for a story of several players and characters: who plays, who is present,
and how the players' lines are answered.

`!invite @friend:server` invites a friend to play (they play once they join; Element's invite
does the same); `!remove @friend:server` removes a player (or withdraws an invite); `!rounds
on|off` answers the players' lines together, in rounds. Only the story's owner may do these. A
name picked from Element's list (a pill) counts as the user id it stands for. Any player may bring
a character into the story (`!invite <character>`: one they may use, up to `MAX_CHARACTERS`
present) or let one go (`!dismiss <character>`; never the host). What a command decides is sent
by its room (`Invite`, `Kick`, `SetRounds`, `BringIn`).
"""

from __future__ import annotations

import re

from adapter.matrix.handlers.commands import (
    BringIn,
    CommandError,
    CommandResult,
    Invocation,
    SetRounds,
    cast_first,
    command_list,
    find_character,
)
from adapter.matrix.handlers.story_commands import chat_id_of, engine_call
from adapter.matrix.outgoing import Invite, Kick
from adapter.matrix.room_types import STORY_ROOMS
from adapter.matrix.store import room_players
from core.engine import MAX_CHARACTERS

COMMANDS, command = command_list()

USER_ID = re.compile(r"^@[^\s:]+:[A-Za-z0-9.\-]+(:[0-9]+)?$")
REMOVED_REASON = "Removed from the story by its owner."


def user_named(inv: Invocation) -> str | None:
    """The user a command names: a full Matrix id, or the one user its line mentions (a pill); None
    when it names no user (a character, perhaps)."""
    words = inv.args.split()
    if len(words) == 1 and USER_ID.match(words[0]):
        return words[0]
    if inv.args.startswith("@"):
        raise CommandError(f"`{inv.args}` is not a Matrix user id: give it whole, like `@friend:example.org`.")
    if len(inv.mentions) == 1:
        return inv.mentions[0]
    return None


def invited(inv: Invocation, user_id: str) -> bool:
    """Whether `user_id` has an invite to the room waiting, as the sync shows the room."""
    room = inv.ctx.client.rooms.get(inv.meta.room_id)
    member = room.users.get(user_id) if room is not None else None
    return bool(member is not None and member.invited)


async def invite_player(inv: Invocation, user_id: str) -> list[CommandResult]:
    if user_id == inv.ctx.bot_user_id:
        return inv.reply("I am here already: I tell the story.")
    if user_id == inv.meta.matrix_user_id:
        return inv.reply("You play in your story already.")
    if not inv.ctx.config.matrix.is_allowed(user_id):
        return inv.reply(f"{user_id} cannot play: their account is not on this bot's list of allowed users "
                         "(its operator can add it to `matrix.allowed_users`).")
    if user_id in await room_players(inv.ctx.store, inv.meta.room_id):
        return inv.reply(f"{user_id} plays in this story already.")
    if invited(inv, user_id):
        return inv.reply(f"{user_id} is invited already: they play once they accept.")
    return [Invite(inv.meta.room_id, user_id), *inv.reply(
        f"Invited {user_id}. They play once they join, as their display name until they choose a persona "
        "(`!persona`); they remember nothing of what was said before they came.")]


def only_the_owner(inv: Invocation) -> list[CommandResult] | None:
    if inv.sender == inv.meta.matrix_user_id:
        return None
    return inv.reply(f"Only {inv.meta.matrix_user_id}, whose story this is, can invite and remove players.")


@command("invite", "!invite @user:server or <character>", "invite a friend to play in this story (the owner; Element's "
         f"invite does the same), or bring a character into it (up to {MAX_CHARACTERS} at once)", STORY_ROOMS)
async def _invite(inv: Invocation) -> list[CommandResult]:
    if not inv.args.strip():
        raise CommandError("Say whom to invite: a friend's Matrix id (`!invite @friend:example.org`) or a character (`!invite odile`).")
    user_id = user_named(inv)
    if user_id is None:
        return await invite_character(inv)
    return only_the_owner(inv) or await invite_player(inv, user_id)


async def invite_character(inv: Invocation) -> list[CommandResult]:
    cast = await engine_call(inv, inv.ctx.engine.cast(chat_id_of(inv)))
    chosen = find_character(cast_first(cast, await inv.ctx.engine.list_characters(player=inv.sender)), inv.args)
    if any(c.character_id == chosen.character_id for c in cast):
        return inv.reply(f"**{chosen.name}** is in this story already.")
    if len(cast) >= MAX_CHARACTERS:
        names = ", ".join(c.name for c in cast[1:])
        return inv.reply(f"A story holds {MAX_CHARACTERS} characters at most: `!dismiss` one first ({names}).")
    return [BringIn(chosen.character_id, chosen.name, inv.sender)]


@command("dismiss", "!dismiss <character>", "a character leaves the story, keeping what it witnessed (the host stays)",
         STORY_ROOMS)
async def _dismiss(inv: Invocation) -> list[CommandResult]:
    if not inv.args.strip():
        raise CommandError("Say which character leaves.")
    cast = await engine_call(inv, inv.ctx.engine.cast(chat_id_of(inv)))
    chosen = find_character(cast, inv.args)
    if chosen.character_id == cast[0].character_id:
        return inv.reply(f"**{chosen.name}** is this story's host and stays in it.")
    gone = await engine_call(inv, inv.ctx.engine.dismiss_character(chat_id_of(inv), chosen.character_id))
    return inv.reply(f"*{gone.name} leaves the scene.* They keep what they witnessed; `!invite {gone.character_id}` brings them back.")


@command("remove", "!remove @user:server", "remove a player from this story, or withdraw their invite (the owner; "
         "Element's remove does the same); they keep what they witnessed", STORY_ROOMS)
async def _remove(inv: Invocation) -> list[CommandResult]:
    refused = only_the_owner(inv)
    if refused is not None:
        return refused
    user_id = user_named(inv)
    if user_id is None:
        raise CommandError("Say whom to remove: their Matrix id, like `!remove @friend:example.org`.")
    if user_id == inv.ctx.bot_user_id:
        return inv.reply("I tell the story, so I stay; to end it, leave the room.")
    if user_id == inv.meta.matrix_user_id:
        return inv.reply("You own this story, so you stay in it.")
    if invited(inv, user_id):
        return [Kick(inv.meta.room_id, user_id, REMOVED_REASON), *inv.reply(f"{user_id}'s invite is withdrawn.")]
    if user_id not in await room_players(inv.ctx.store, inv.meta.room_id):
        return inv.reply(f"{user_id} does not play in this story.")
    return [Kick(inv.meta.room_id, user_id, REMOVED_REASON), *inv.reply(
        f"{user_id} is removed from the story: their lines are no longer part of it, and they keep what they witnessed.")]


@command("rounds", "!rounds [on or off]", "on: the players' lines are gathered until everyone has spoken (or a "
         "short while) and answered in one reply; off: each line in turn (the owner)", STORY_ROOMS, owner_only=True)
async def _rounds(inv: Invocation) -> list[CommandResult]:
    wanted = inv.args.strip().lower()
    if not wanted:
        state = "on: the players' lines are answered together" if inv.meta.rounds else "off: each line is answered in turn"
        return inv.reply(f"Rounds are {state}. `!rounds on` or `!rounds off` changes it.")
    if wanted not in ("on", "off"):
        raise CommandError(f"`{inv.args.strip()}` is neither `on` nor `off`.")
    if (wanted == "on") == inv.meta.rounds:
        return inv.reply(f"Rounds are {wanted} already.")
    return [SetRounds(wanted == "on")]
