"""Player personas: the name `{{user}}` stands for in a story, and a short description.

A player (a user id: the chat owner's today) has a default persona, for new stories; a
player who never set one gets a default from their id: the localpart of a Matrix id
(`@maren:hs` -> "maren"), never "you".  Each story keeps the persona each player plays in
it (`story_personas`, keyed by chat and player): the default as it stood at the player's
first line there, or what they set in that story.  A story without one follows the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import fetch_all, fetch_one

MAX_NAME_CHARS = 80
MAX_DESCRIPTION_CHARS = 1000


@dataclass(frozen=True)
class Persona:
    owner: str
    name: str
    description: str = ""
    is_default: bool = False


def default_name(owner: str) -> str:
    """A readable name for a player who has not set a persona."""
    local = owner[1:].split(":", 1)[0] if owner.startswith("@") else owner
    return local.strip() or "Player"


async def get_persona(source: Readable, owner: str) -> Persona:
    row = await fetch_one(source, "SELECT name, description FROM personas WHERE owner = ?", (owner,))
    if row is None:
        return Persona(owner, default_name(owner), is_default=True)
    return Persona(owner, row["name"], row["description"])


async def has_persona(source: Readable, owner: str) -> bool:
    return await fetch_one(source, "SELECT 1 FROM personas WHERE owner = ?", (owner,)) is not None


async def set_persona(target: Writable, owner: str, name: str, description: str = "") -> Persona:
    async with writing(target) as tx:
        await append_and_apply(tx, "persona_set", {"owner": owner, "name": name, "description": description})
        return await get_persona(tx, owner)


async def story_persona(source: Readable, chat_id: str, player: str) -> Persona:
    """The persona `player` plays in the story `chat_id` (their default while the story has none)."""
    row = await fetch_one(
        source, "SELECT name, description FROM story_personas WHERE chat_id = ? AND player = ?", (chat_id, player)
    )
    if row is None:
        return await get_persona(source, player)
    return Persona(player, row["name"], row["description"])


async def has_story_persona(source: Readable, chat_id: str, player: str) -> bool:
    return await fetch_one(
        source, "SELECT 1 FROM story_personas WHERE chat_id = ? AND player = ?", (chat_id, player)
    ) is not None


async def set_story_persona(target: Writable, chat_id: str, player: str, name: str, description: str = "") -> Persona:
    async with writing(target) as tx:
        await append_and_apply(tx, "story_persona_set", {
            "chat_id": chat_id, "player": player, "name": name, "description": description,
        })
        return await story_persona(tx, chat_id, player)


async def stories_following_default(source: Readable, owner: str) -> list[str]:
    """The chats of `owner` that began (hold a player's line) and keep no persona of their own."""
    rows = await fetch_all(
        source,
        """SELECT c.chat_id FROM chats c
           WHERE c.owner = :owner
             AND NOT EXISTS (SELECT 1 FROM story_personas p WHERE p.chat_id = c.chat_id AND p.player = :owner)
             AND EXISTS (SELECT 1 FROM turns t WHERE t.chat_id = c.chat_id AND t.role = 'user')
           ORDER BY c.chat_num""",
        {"owner": owner},
    )
    return [r["chat_id"] for r in rows]
