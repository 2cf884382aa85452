"""The projector registry and the small lookups projectors share.

A projector is `async def(conn, seq, payload) -> created row id | None`; it runs
inside the write transaction of the event, on the writer connection, and raises
a typed error (rolling the event back) when the event does not fit the state.
Ids of created rows are the event's `seq`, except memory ids, which are packed
per chat (see `memory_id_range`).

`as_players` reads the one player of an older story's events ("you") as the story's owner;
`require_known` checks that ids are characters or players of the chat.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from core.errors import CharacterNotFoundError, ChatNotFoundError, NotFoundError, SceneNotFoundError
from core.eventlog.events import LEGACY_PLAYER, EventPayload
from core.storage import Connection, Row

P = TypeVar("P", bound=EventPayload)
Projector = Callable[[Connection, int, Any], Awaitable[int | None]]

PROJECTORS: dict[str, Projector] = {}

MEMORY_ID_BITS = 32


def projects(model: type[P]) -> Callable[[Callable[[Connection, int, P], Awaitable[int | None]]], Projector]:
    def register(fn: Projector) -> Projector:
        if model.kind in PROJECTORS:
            raise RuntimeError(f"two projectors for {model.kind!r}")
        PROJECTORS[model.kind] = fn
        return fn

    return register


def memory_id_range(chat_num: int) -> tuple[int, int]:
    """The inclusive memory_id (= FTS rowid) range that belongs to one chat."""
    low = chat_num << MEMORY_ID_BITS
    return low, low + (1 << MEMORY_ID_BITS) - 1


def story_time_text(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def json_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), ensure_ascii=False)


async def fetch_one(conn: Connection, sql: str, params: Sequence[Any] = ()) -> Row | None:
    return await conn.fetch_one(sql, params)


async def chat_clock(conn: Connection, chat_id: str) -> str:
    row = await fetch_one(conn, "SELECT clock FROM chats WHERE chat_id = ?", (chat_id,))
    if row is None:
        raise ChatNotFoundError(chat_id)
    return row["clock"]


async def require_row(
    conn: Connection,
    error: type[NotFoundError],
    table: str,
    key: str,
    ident: int,
    chat_id: str,
) -> Row:
    """The row `table.key == ident`, which must belong to `chat_id`."""
    row = await fetch_one(conn, f"SELECT * FROM {table} WHERE {key} = ?", (ident,))
    if row is None:
        raise error(ident)
    if row["chat_id"] != chat_id:
        raise error(ident, f"it belongs to another chat than {chat_id!r}")
    return row


async def scene_or_open_main(conn: Connection, chat_id: str, scene_id: int | None) -> int | None:
    """An explicit scene (checked to be in the chat) or the chat's open main scene, if any."""
    if scene_id is not None:
        await require_row(conn, SceneNotFoundError, "scenes", "scene_id", scene_id, chat_id)
        return scene_id
    row = await fetch_one(
        conn,
        "SELECT scene_id FROM scenes WHERE chat_id = ? AND kind = 'main' AND closed_at IS NULL",
        (chat_id,),
    )
    return None if row is None else row["scene_id"]


async def story_owner(conn: Connection, chat_id: str) -> str:
    row = await fetch_one(conn, "SELECT owner FROM chats WHERE chat_id = ?", (chat_id,))
    if row is None:
        raise ChatNotFoundError(chat_id)
    return str(row["owner"])


async def as_players(conn: Connection, chat_id: str, ids: Sequence[str]) -> list[str]:
    """`ids` with the player of an older story's events ("you") read as the story's owner (looked
    up only when "you" is among them)."""
    if LEGACY_PLAYER not in ids:
        return list(ids)
    owner = await story_owner(conn, chat_id)
    return [owner if ident == LEGACY_PLAYER else ident for ident in ids]


async def as_player(conn: Connection, chat_id: str, ident: str) -> str:
    return (await as_players(conn, chat_id, [ident]))[0]


async def require_known(conn: Connection, chat_id: str, ids: Sequence[str]) -> None:
    """CharacterNotFoundError for an id that is neither a registered character nor a player of the chat."""
    if not ids:
        return
    marks = ", ".join("?" * len(ids))
    rows = await conn.fetch_all(
        f"""SELECT character_id FROM characters WHERE character_id IN ({marks})
            UNION SELECT player FROM story_players WHERE chat_id = ? AND player IN ({marks})""",
        (*ids, chat_id, *ids),
    )
    known = {row[0] for row in rows}
    for ident in ids:
        if ident not in known:
            raise CharacterNotFoundError(ident, "neither a character nor a player of the story")
