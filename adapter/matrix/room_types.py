"""What a room the bot serves is for: the one list of room types.

A `str` enum: each type is stored as its value, in the cache (`room_meta.room_type`) and in the
room's `org.rpbot.room` state, so what older versions wrote reads back as the same type.
"""

from __future__ import annotations

from enum import StrEnum


class RoomType(StrEnum):
    SPACE = "space"  # a player's Space
    LOBBY = "lobby"  # the Space's Lobby: commands that start stories
    STORY = "chat"  # a story room (stored as "chat", as it always was)
    INVITE = "invite"  # a room the player invited the bot to: the Lobby's commands work there


LOBBY_ROOMS = frozenset({RoomType.LOBBY, RoomType.INVITE})
STORY_ROOMS = frozenset({RoomType.STORY})
