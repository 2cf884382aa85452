"""Player personas: the name `{{user}}` stands for in a story, and a short description.

A player (a user id) has a default persona, for new stories; a player who never set one gets
a default from their id: the localpart of a Matrix id (`@maren:hs` -> "maren"), never "you".
Each story keeps the persona each player plays in it (`story_personas`, keyed by chat and
player): for its owner, the default as it stood at their first line there; for a player who
joined, the one they had when they joined; or what they set in that story.  A story without
one follows the default.
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


@dataclass(frozen=True)
class StoryPlayer:
    """A player of a story with the persona they play in it; `active`: playing now (not left)."""

    persona: Persona
    is_owner: bool
    active: bool


async def story_players_personas(source: Readable, chat_id: str) -> list[StoryPlayer]:
    """Everyone who plays or played in the story with their persona there (one query): the owner
    first, then in the order they joined."""
    rows = await fetch_all(
        source,
        """SELECT sp.player, sp.active, sp.player = c.owner AS is_owner,
                  s.name AS story_name, s.description AS story_description,
                  p.name AS default_name, p.description AS default_description
           FROM story_players sp JOIN chats c ON c.chat_id = sp.chat_id
           LEFT JOIN story_personas s ON s.chat_id = sp.chat_id AND s.player = sp.player
           LEFT JOIN personas p ON p.owner = sp.player
           WHERE sp.chat_id = ? ORDER BY is_owner DESC, sp.joined_seq, sp.player""",
        (chat_id,),
    )
    found = []
    for r in rows:
        if r["story_name"] is not None:
            persona = Persona(r["player"], r["story_name"], r["story_description"])
        elif r["default_name"] is not None:
            persona = Persona(r["player"], r["default_name"], r["default_description"])
        else:
            persona = Persona(r["player"], default_name(r["player"]), is_default=True)
        found.append(StoryPlayer(persona, bool(r["is_owner"]), bool(r["active"])))
    return found
