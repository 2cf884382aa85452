"""Player personas: the name `{{user}}` stands for in a story, and a short description.

One persona per player (the chat owner's id).  A player who never set one gets a default
from their id: the localpart of a Matrix id (`@maren:hs` -> "maren"), never "you".
"""

from __future__ import annotations

from dataclasses import dataclass

from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import fetch_one

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
