"""Building a player's Space, lobby and story rooms, with the state that identifies them.

The identity of each room lives in Matrix state written by the bot
(`org.rpbot.space`, `org.rpbot.room`); the adapter's store is a cache of it.
Power levels keep those events (and the Space links, and Element's room settings) at 100,
so only the bot can write them; the owner gets 50 (they name the room, invite friends and
remove them), the friends who play in a story room the default 0 (they talk and react). Rooms are made in the room version chosen
at start (`adapter.matrix.room_versions`); a Space may hold rooms of several.
The Space, the Lobby and each story room have a picture (the story's is its host's face).

The player is invited to the Space and to each story room; the Lobby is joined from the Space
(its join rule lets the Space's members in), so no invite is left waiting once the player has
followed the welcome. A story room starts with the bot wearing its host's face (its member
event in the initial state) and with `im.vector.web.settings` telling Element to hide the
bot's name and avatar changes (the face switches of a group scene).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from nio import RoomPreset, RoomVisibility

from adapter.matrix.avatars import avatar_state, place_avatar, speaker_profile
from adapter.matrix.context import BotContext
from adapter.matrix.outgoing import CreateRoom, SendMessage, SendState, txn_id_for
from adapter.matrix.render import character_reply
from adapter.matrix.room_types import RoomType
from adapter.matrix.room_versions import creators_have_unlimited_power
from adapter.matrix.speaking import Face, initial_face_state
from adapter.matrix.store import (
    RoomMeta,
    UserMeta,
    next_platform_chat_id,
    record_reply_message,
    set_room_meta,
    set_user_meta,
)
from core.engine import TurnUpdate

log = logging.getLogger(__name__)

SPACE_STATE = "org.rpbot.space"
ROOM_STATE = "org.rpbot.room"
STATE_VERSION = 1
# Element's room-level settings (state key ""): in story rooms, the bot's face switches are not shown.
ELEMENT_SETTINGS = "im.vector.web.settings"
HIDE_PROFILE_CHANGES = {"showDisplaynameChanges": False, "showAvatarChanges": False}

_BOT_ONLY_EVENTS = (
    SPACE_STATE,
    ROOM_STATE,
    "m.space.child",
    "m.space.parent",
    "m.room.power_levels",
    "m.room.join_rules",
    "m.room.encryption",
    "m.room.history_visibility",
    "m.room.tombstone",
    "m.room.server_acl",
    ELEMENT_SETTINGS,
)


OWNER_LEVEL = 50
KICK_LEVEL = OWNER_LEVEL  # the owner removes a player from Element too (a kick needs more power than its target has)


def power_levels(bot_user_id: str, owner: str, room_version: str) -> dict[str, Any]:
    """Bot 100 (from room version 12 on: the bot is the creator, unlimited and unlisted), owner 50,
    everyone else (the friends who play in a story) 0.

    The bot's identity and topology events need 100, more than the owner has; the room's name,
    topic and picture, invites and removals need 50, more than a friend has; talking, reacting
    and deleting one's own lines need nothing.
    """
    users = {owner: OWNER_LEVEL} if creators_have_unlimited_power(room_version) else {bot_user_id: 100, owner: OWNER_LEVEL}
    return {
        "users": users,
        "users_default": 0,
        "events_default": 0,
        "state_default": 50,
        "invite": OWNER_LEVEL,
        "kick": KICK_LEVEL,
        "ban": 100,
        "redact": 50,
        "events": {event_type: 100 for event_type in _BOT_ONLY_EVENTS},
    }


def space_request(ctx: BotContext, owner: str, avatar: str | None = None) -> CreateRoom:
    localpart = owner.split(":", 1)[0].lstrip("@")
    return CreateRoom(
        {
            "space": True,
            "name": f"Stories of {localpart}",
            "topic": "Your rpbot stories: the Lobby starts new ones, each other room is one story.",
            "room_version": ctx.room_version,
            "visibility": RoomVisibility.private,
            "preset": RoomPreset.private_chat,
            "invite": [owner],
            "power_level_override": power_levels(ctx.bot_user_id, owner, ctx.room_version),
            "initial_state": [
                {"type": SPACE_STATE, "state_key": "", "content": {"owner": owner, "version": STATE_VERSION}},
                *avatar_state(avatar),
            ],
        }
    )


def story_room_state(bot_user_id: str, face: Face) -> list[dict[str, Any]]:
    """What a story room starts with beyond any room's: the bot wearing its host's face, and
    Element told to hide the bot's profile changes in it."""
    return [initial_face_state(bot_user_id, face), {"type": ELEMENT_SETTINGS, "state_key": "", "content": dict(HIDE_PROFILE_CHANGES)}]


def child_room_request(
    ctx: BotContext, owner: str, space_id: str, *, name: str, topic: str, identity: dict[str, Any], avatar: str | None = None,
    invite: bool = True, extra_state: list[dict[str, Any]] | None = None,
) -> CreateRoom:
    """A room in `space_id`; `invite`: the owner gets an invite (else joins through the Space)."""
    initial_state: list[dict[str, Any]] = [
        {"type": "m.space.parent", "state_key": space_id, "content": {"canonical": True, "via": [ctx.server_name]}},
        {
            "type": "m.room.join_rules",
            "state_key": "",
            "content": {"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space_id}]},
        },
        {"type": ROOM_STATE, "state_key": "", "content": identity},
        *avatar_state(avatar),
        *(extra_state or []),
    ]
    if ctx.config.matrix.encryption:
        initial_state.append({"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}})
    return CreateRoom(
        {
            "name": name,
            "topic": topic,
            "room_version": ctx.room_version,
            "visibility": RoomVisibility.private,
            "preset": RoomPreset.private_chat,
            "invite": [owner] if invite else [],
            "power_level_override": power_levels(ctx.bot_user_id, owner, ctx.room_version),
            "initial_state": initial_state,
        }
    )


async def link_child(ctx: BotContext, space_id: str, room_id: str, order: str) -> None:
    await ctx.sender.send(
        SendState(space_id, "m.space.child", {"via": [ctx.server_name], "order": order, "suggested": True}, state_key=room_id)
    )


async def create_space(ctx: BotContext, owner: str, notify_room: str | None = None) -> UserMeta:
    space_id = await ctx.sender.create_room(space_request(ctx, owner, await place_avatar(ctx, RoomType.SPACE)), notify_room=notify_room)
    meta = UserMeta(user_id=owner, space_id=space_id)
    await set_user_meta(ctx.store, meta)
    await set_room_meta(ctx.store, RoomMeta(space_id, RoomType.SPACE, owner, space_id=space_id))
    log.info("created space %s", space_id, extra={"room_id": space_id, "user_id": owner})
    return meta


async def create_lobby(ctx: BotContext, owner: str, space_id: str, notify_room: str | None = None) -> str:
    identity = {
        "owner": owner, "room_type": RoomType.LOBBY, "space_id": space_id, "chat_id": None, "platform_chat_id": None,
        "version": STATE_VERSION,
    }
    room_id = await ctx.sender.create_room(
        child_room_request(
            ctx,
            owner,
            space_id,
            name="Lobby",
            topic="Start a story here: !new [character] [with character] · !characters · !help",
            identity=identity,
            avatar=await place_avatar(ctx, RoomType.LOBBY),
            invite=False,  # joined from the Space: no invite left waiting
        ),
        notify_room=notify_room,
    )
    await set_room_meta(ctx.store, RoomMeta(room_id, RoomType.LOBBY, owner, space_id=space_id))
    await link_child(ctx, space_id, room_id, order="0000")
    await set_user_meta(ctx.store, UserMeta(owner, space_id, room_id))
    return room_id


def identity_content(meta: RoomMeta) -> dict[str, Any]:
    """The `org.rpbot.room` content of a lobby or story room, as its record has it (`rounds`: only when on)."""
    content: dict[str, Any] = {"owner": meta.matrix_user_id, "room_type": meta.room_type, "space_id": meta.space_id,
                               "chat_id": meta.chat_id, "platform_chat_id": meta.platform_chat_id, "version": STATE_VERSION}
    if meta.rounds:
        content["rounds"] = True
    return content


async def create_story_room(
    ctx: BotContext, owner: str, space_id: str, host: str, guest: str | None = None, notify_room: str | None = None,
    *, starts_at: datetime | None = None, scenario: str | None = None,
) -> str:
    """A new story: engine chat (beginning at `starts_at` and with its own `scenario`, if given),
    room in the Space, and the host's greeting as its first line."""
    chat = await ctx.engine.create_chat(owner=owner, host=host, guest=guest, starts_at=starts_at, scenario=scenario)
    platform_chat_id = await next_platform_chat_id(ctx.store)
    identity = {
        "owner": owner,
        "room_type": RoomType.STORY,
        "space_id": space_id,
        "chat_id": chat.chat_id,
        "platform_chat_id": platform_chat_id,
        "version": STATE_VERSION,
    }
    cast = chat.host_name + (f" & {chat.guest_name}" if chat.guest_name else "")
    host_face = Face.of(await speaker_profile(ctx, chat.host_id, chat.host_name))
    room_id = await ctx.sender.create_room(
        child_room_request(
            ctx,
            owner,
            space_id,
            name=chat.title,
            topic=f"A story with {cast}. Type to talk; !help lists commands.",
            identity=identity,
            avatar=host_face.avatar_url,
            extra_state=story_room_state(ctx.bot_user_id, host_face),
        ),
        notify_room=notify_room,
    )
    ctx.faces.assume(room_id, host_face)
    await set_room_meta(ctx.store, RoomMeta(room_id, RoomType.STORY, owner, space_id, chat.chat_id, platform_chat_id))
    await link_child(ctx, space_id, room_id, order=f"1{platform_chat_id.removeprefix('mx-').zfill(8)}")
    await _show_opening(ctx, room_id, await ctx.engine.greeting(chat.chat_id), "greeting")
    if chat.guest_id:
        try:
            entrance = await ctx.engine.guest_entrance(chat.chat_id)
        except Exception:  # noqa: BLE001  (the story works without it: the player can talk at once)
            log.warning("the guest's entrance could not be written", exc_info=True, extra={"room_id": room_id})
            entrance = None
        if entrance is not None:
            await _show_opening(ctx, room_id, entrance, "entrance")
    log.info("created story room %s", room_id, extra={"room_id": room_id, "chat_id": chat.chat_id, "user_id": owner})
    return room_id


async def _show_opening(ctx: BotContext, room_id: str, update: TurnUpdate, what: str) -> None:
    """The host's greeting or the guest's entrance, as a character's message 🔄 can redo."""
    profile = await speaker_profile(ctx, update.speaker_id, update.speaker_name)
    content = character_reply(update.text, profile=profile)  # it answers no one: it mentions no one
    async with ctx.faces.speaking(room_id, profile):
        event_id = await ctx.sender.send(SendMessage(room_id, content, txn_id_for(room_id, what)))
    if event_id is not None and update.turn_id is not None:
        await record_reply_message(ctx.store, f"{room_id}#{what}", update.speaker_id, event_id, update.turn_id)
