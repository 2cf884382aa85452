"""Several players in one story room: who plays there, who joins and leaves, and what the room is told.

A story room's players are its owner and the allowed users who joined it: the owner invites a
friend (Element's invite, or `!invite @friend:server`), and the friend plays from the moment they
join, as their display name unless they chose a persona. Matrix membership is the truth: the
adapter's cache (`room_players`) follows each member event as the sync shows it (and is rebuilt
from the room's membership at start), and so does the engine (`Engine.join_player`,
`Engine.leave_player`), where each player is a witness of what is said while they play. A player
who leaves, or whom the owner removes (`!remove`, or Element's Remove), no longer plays; their
lines are not taken. A user who may not use the bot (not in `allowed_users`) is never a player:
their invite is withdrawn, or they are removed, and the room is told why.

Recording happens in the sync loop, before the next event is routed (a friend's first line may
come in the same sync as their join); what the room is told is sent by the room's task.
"""

from __future__ import annotations

import logging

from adapter.matrix.context import BotContext
from adapter.matrix.routing import PlayerJoined, PlayerLeft
from adapter.matrix.store import add_room_player, remove_room_player

log = logging.getLogger(__name__)

NOT_ALLOWED_TO_PLAY = "This bot is private: your account is not on its list of allowed users, so you cannot play in its stories."


def welcome_text(persona: str) -> str:
    """What the room is told when a friend joins: who they play, and how to play."""
    return (
        f"**{persona}** joins the story. Type to speak in it, `((like this))` to speak out of character. "
        "The characters meet you now: what was said before you came is not something you remember. "
        "`!persona Name: description` changes who you are in this story; `!help` lists the rest."
    )


def left_text(name: str, removed: bool) -> str:
    return f"**{name}** is no longer in the story." if removed else f"**{name}** has left the story."


def turned_away_text(user_id: str, joined: bool) -> str:
    done = "They were removed from the room." if joined else "Their invite is withdrawn."
    return f"{user_id} cannot play here: their account is not on this bot's list of allowed users. {done}"


def stranger_text(owner: str, sender: str, *, story: bool) -> str:
    """What someone who does not play in a room is told, once."""
    if story:
        return f"Only the players of this story are heard in it. {owner}, whose story it is, can invite you with `!invite {sender}`."
    return f"This room belongs to {owner}; only they can use it. Invite me to your own room to start your stories."


async def record_join(ctx: BotContext, joined: PlayerJoined) -> str:
    """`joined.user_id` plays in the story from now on (cache and engine); returns the persona they play."""
    await add_room_player(ctx.store, joined.room_id, joined.user_id)
    player = await ctx.engine.join_player(joined.chat_id, joined.user_id, joined.display_name)
    log.info("%s plays in the story now", joined.user_id, extra={"room_id": joined.room_id, "chat_id": joined.chat_id})
    return player.name


async def record_leave(ctx: BotContext, left: PlayerLeft) -> str | None:
    """`left.user_id` no longer plays in the story (cache and engine); returns the persona they
    played, or None if they did not play (already recorded, say by `!remove`)."""
    cached = await remove_room_player(ctx.store, left.room_id, left.user_id)
    stopped = await ctx.engine.leave_player(left.chat_id, left.user_id)
    if not (cached or stopped):
        return None
    log.info("%s no longer plays in the story", left.user_id, extra={"room_id": left.room_id, "chat_id": left.chat_id})
    return next((p.name for p in await ctx.engine.players(left.chat_id) if p.player_id == left.user_id), left.user_id)
