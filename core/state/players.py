"""Who plays in a story: its owner (its first player) and the players who joined.

A player is an id the adapter gives (a Matrix user id).  The owner plays from the story's
creation and never leaves it; others join (`player_joined`) and may leave (`player_left`) and
come back.  Only players playing now (`active`) may say a line, and only they witness what is
said while they are away from it; a player who left keeps what they witnessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.eventlog import Readable, Writable, append_and_apply
from core.state.rows import fetch_all, fetch_one


@dataclass(frozen=True)
class Player:
    player_id: str
    is_owner: bool
    active: bool


async def story_players(source: Readable, chat_id: str) -> list[Player]:
    """Everyone who plays or played in the story: the owner first, then in the order they joined."""
    rows = await fetch_all(
        source,
        """SELECT sp.player, sp.player = c.owner AS is_owner, sp.active FROM story_players sp
           JOIN chats c ON c.chat_id = sp.chat_id
           WHERE sp.chat_id = ? ORDER BY sp.player = c.owner DESC, sp.joined_seq, sp.player""",
        (chat_id,),
    )
    return [Player(r["player"], bool(r["is_owner"]), bool(r["active"])) for r in rows]


async def get_player(source: Readable, chat_id: str, player: str) -> Player | None:
    row = await fetch_one(
        source,
        """SELECT sp.player, sp.player = c.owner AS is_owner, sp.active FROM story_players sp
           JOIN chats c ON c.chat_id = sp.chat_id WHERE sp.chat_id = ? AND sp.player = ?""",
        (chat_id, player),
    )
    return None if row is None else Player(row["player"], bool(row["is_owner"]), bool(row["active"]))


async def is_playing(source: Readable, chat_id: str, player: str) -> bool:
    found = await get_player(source, chat_id, player)
    return found is not None and found.active


async def join(target: Writable, chat_id: str, player: str) -> None:
    await append_and_apply(target, "player_joined", {"chat_id": chat_id, "player": player})


async def leave(target: Writable, chat_id: str, player: str) -> None:
    await append_and_apply(target, "player_left", {"chat_id": chat_id, "player": player})
