"""Invites and onboarding: who may use the bot, and giving a new player their Space.

An invite from a user not in `allowed_users` is rejected with a reason. An
allowed user's invite is accepted; if they have no Space yet, the bot builds
the Space, its lobby and a first story room. Everything for one user runs
under that user's lock, so concurrent invites never make a second Space, and a
half-finished onboarding (the invite noted or the Space made, rooms not yet) is completed at the
next start, not redone.

The welcome is the first thing the bot says in the room it was invited to (what the player
said there before the bot came is answered by it) and links the Space, the Lobby and the
first story as pills. Following it (accept the Space's invite, open the story) leaves no
invite waiting: the Lobby has none, it opens from the Space or its link.
"""

from __future__ import annotations

import logging

from adapter.matrix.context import BotContext
from adapter.matrix.handlers.persona import display_name_of
from adapter.matrix.outgoing import LeaveRoom, SendFailed, SendMessage, txn_id_for
from adapter.matrix.render import notice, room_link
from adapter.matrix.room_types import RoomType
from adapter.matrix.spaces import create_lobby, create_space, create_story_room
from adapter.matrix.store import (
    RoomMeta,
    get_room_meta,
    get_user_meta,
    rooms_of_user,
    set_room_meta,
)

log = logging.getLogger(__name__)

NOT_ALLOWED_REASON = "This bot is private: your account is not on its list of allowed users."


async def handle_invite(ctx: BotContext, room_id: str, inviter: str) -> None:
    """React to the bot being invited to `room_id` by `inviter`."""
    if not ctx.config.matrix.is_allowed(inviter):
        log.info("rejecting invite: inviter not allowed", extra={"room_id": room_id, "user_id": inviter})
        await ctx.sender.send(LeaveRoom(room_id, NOT_ALLOWED_REASON))
        return
    async with ctx.user_locks.hold(inviter):
        known = await get_room_meta(ctx.store, room_id)
        if known is None:  # noted before joining: a stop while the join is on its way leaves the onboarding to finish
            await set_room_meta(ctx.store, RoomMeta(room_id, RoomType.INVITE, inviter))
        if not await ctx.sender.join(room_id):
            return
        if known is not None and known.room_type != RoomType.INVITE:
            return  # one of the player's own rooms (a re-invite after leaving): nothing to build
        space_id = await ensure_onboarded(ctx, inviter, notify_room=room_id)
        user = await get_user_meta(ctx.store, inviter)
        stories = [room.room_id for room in await rooms_of_user(ctx.store, inviter) if room.room_type == RoomType.STORY]
        text = welcome_text(ctx, space_id, user.lobby_room_id if user else None, stories[0] if stories else None)
        await ctx.sender.send(SendMessage(room_id, notice(text), txn_id_for(room_id, f"welcome:{space_id}")))


async def ensure_onboarded(ctx: BotContext, user_id: str, notify_room: str | None = None) -> str:
    """Make sure `user_id` has a Space with a lobby and at least one story; return the Space id.

    Must be called under the user's lock. Each step is recorded as soon as it is
    done, so an interrupted onboarding resumes where it stopped.
    """
    meta = await get_user_meta(ctx.store, user_id)
    if meta is None or meta.space_id is None:
        meta = await create_space(ctx, user_id, notify_room)
    assert meta.space_id is not None
    if meta.lobby_room_id is None:
        await create_lobby(ctx, user_id, meta.space_id, notify_room)
    stories = [room for room in await rooms_of_user(ctx.store, user_id) if room.room_type == RoomType.STORY]
    if not stories:
        await ctx.engine.ensure_persona(user_id, display_name_of(ctx, user_id, notify_room))
        characters = await ctx.engine.list_characters(player=user_id)
        try:
            await create_story_room(ctx, user_id, meta.space_id, host=characters[0].character_id, notify_room=notify_room)
        except SendFailed:
            log.exception("first story room could not be made", extra={"user_id": user_id})
    return meta.space_id


async def resume_onboarding(ctx: BotContext, user_id: str) -> None:
    """Finish an onboarding a crash cut short (found by reconciliation); run once the live sync runs."""
    async with ctx.user_locks.hold(user_id):
        space_id = await ensure_onboarded(ctx, user_id)
    log.info("resumed the onboarding of %s in %s", user_id, space_id)


def welcome_text(ctx: BotContext, space_id: str, lobby_id: str | None, story_id: str | None) -> str:
    """The welcome: where the player's stories are, each room a pill, and the two clicks to start."""
    space = room_link(space_id, ctx.server_name, "your Space")
    story = room_link(story_id, ctx.server_name, "your first story") if story_id else "your first story"
    lobby = room_link(lobby_id, ctx.server_name, "Lobby") if lobby_id else "Lobby"
    return (
        f"Welcome! Accept the invite to {space}, then open {story} and just type to talk with its character.\n\n"
        f"The {lobby}, in the same Space, opens without an invite: there `!new` starts another story "
        "and `!characters` lists who you can meet."
    )
