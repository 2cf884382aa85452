"""The world read model: characters, chats (and who is present in each), each chat's story clock, and scenes.

Reads take any `Readable` (the Database reads committed state through its
reader connection; a Transaction sees its own writes).  Writes take a
`Writable` (the Database, or a Transaction to join) and go through the event log.
The chat clock is story time: the time of the story, never the wall clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from core.errors import ChatNotFoundError, SceneNotFoundError
from core.eventlog import Readable, Writable, append_and_apply, writing
from core.eventlog.events import CharacterRegistered
from core.state import players as player_state
from core.state.rows import dialect_of, fetch_all, fetch_count, fetch_one, json_tuple, story_time
from core.storage.sql import json_items


@dataclass(frozen=True)
class Character:
    character_id: str
    name: str
    description: str
    personality: str
    scenario: str
    first_mes: str
    mes_example: str
    system_prompt: str
    post_history_instructions: str
    creator_notes: str
    alternate_greetings: tuple[str, ...]
    tags: tuple[str, ...]
    creator: str
    character_version: str
    spec: str
    raw_card: dict[str, Any] | None  # the imported card as it was, unknown fields included
    owner: str | None = None  # the player who imported it (None: everyone's)
    shared: bool = False  # its owner shared it with everyone

    def usable_by(self, player: str) -> bool:
        """Whether `player` sees and uses the character: everyone's, shared, or their own."""
        return self.owner is None or self.shared or self.owner == player


@dataclass(frozen=True)
class Chat:
    chat_id: str
    owner: str
    host: str
    guest: str | None
    title: str
    clock: datetime
    scenario: str = ""  # the story's own scenario ("": its host's card's)
    note: str = ""  # the story's standing note for the model (its Author's Note)


@dataclass(frozen=True)
class Scene:
    scene_id: int
    chat_id: str
    kind: Literal["main", "meanwhile"]
    title: str
    present: tuple[str, ...]
    started_at: datetime
    closed_at: datetime | None
    withdrawn: bool = False  # every turn of it was taken back: it is no part of the story

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


def _character(row: Any) -> Character:
    return Character(
        character_id=row["character_id"], name=row["name"], description=row["description"],
        personality=row["personality"], scenario=row["scenario"], first_mes=row["first_mes"],
        mes_example=row["mes_example"], system_prompt=row["system_prompt"],
        post_history_instructions=row["post_history_instructions"],
        creator_notes=row["creator_notes"], alternate_greetings=json_tuple(row["alternate_greetings"]),
        tags=json_tuple(row["tags"]), creator=row["creator"],
        character_version=row["character_version"], spec=row["spec"],
        raw_card=None if row["raw_card"] is None else json.loads(row["raw_card"]),
        owner=row["owner"], shared=bool(row["shared"]),
    )


def _chat(row: Any) -> Chat:
    return Chat(row["chat_id"], row["owner"], row["host"], row["guest"], row["title"],
                datetime.fromisoformat(row["clock"]), row["scenario"], row["note"])


def _scene(row: Any) -> Scene:
    return Scene(row["scene_id"], row["chat_id"], row["kind"], row["title"], json_tuple(row["present"]),
                 datetime.fromisoformat(row["started_at"]), story_time(row["closed_at"]), bool(row["withdrawn"]))


# --- characters ------------------------------------------------------------------


async def register_character(target: Writable, character: CharacterRegistered) -> Character:
    """Add a character, or replace the one with the same id."""
    async with writing(target) as tx:
        await append_and_apply(tx, "character_registered", character)
        found = await get_character(tx, character.character_id)
    assert found is not None
    return found


async def get_character(source: Readable, character_id: str) -> Character | None:
    row = await fetch_one(source, "SELECT * FROM characters WHERE character_id = ?", (character_id,))
    return None if row is None else _character(row)


async def list_characters(source: Readable, *, usable_by: str | None = None) -> list[Character]:
    """Every character (with `usable_by`, those that player sees: everyone's, shared, their own), by name."""
    rows = await fetch_all(
        source,
        """SELECT * FROM characters WHERE :player IS NULL OR owner IS NULL OR shared = 1 OR owner = :player
           ORDER BY name, character_id""",
        {"player": usable_by},
    )
    return [_character(r) for r in rows]


async def share_character(target: Writable, character_id: str) -> None:
    await append_and_apply(target, "character_shared", {"character_id": character_id})


# --- chats and the clock -------------------------------------------------------------


async def create_chat(
    target: Writable,
    *,
    owner: str,
    host: str,
    clock: datetime,
    guest: str | None = None,
    title: str = "",
    chat_id: str | None = None,
    scenario: str = "",
) -> Chat:
    """Create a chat (a story) whose clock starts at `clock`; `chat_id` defaults to a new random
    id; `scenario` is the story's own, shared by everyone present ("": the host's card's)."""
    chat_id = chat_id or f"chat-{uuid.uuid4().hex[:16]}"
    async with writing(target) as tx:
        await append_and_apply(tx, "chat_created", {
            "chat_id": chat_id, "owner": owner, "host": host, "guest": guest, "title": title, "clock": clock,
            "scenario": scenario,
        })
        return await require_chat(tx, chat_id)


async def get_chat(source: Readable, chat_id: str) -> Chat | None:
    row = await fetch_one(source, "SELECT * FROM chats WHERE chat_id = ?", (chat_id,))
    return None if row is None else _chat(row)


async def require_chat(source: Readable, chat_id: str) -> Chat:
    chat = await get_chat(source, chat_id)
    if chat is None:
        raise ChatNotFoundError(chat_id)
    return chat


async def list_chats(source: Readable, owner: str | None = None) -> list[Chat]:
    if owner is None:
        rows = await fetch_all(source, "SELECT * FROM chats ORDER BY chat_num")
    else:
        rows = await fetch_all(source, "SELECT * FROM chats WHERE owner = ? ORDER BY chat_num", (owner,))
    return [_chat(r) for r in rows]


async def set_chat_title(target: Writable, chat_id: str, title: str) -> None:
    await append_and_apply(target, "chat_title_set", {"chat_id": chat_id, "title": title})


async def set_guest(target: Writable, chat_id: str, guest: str | None) -> None:
    await append_and_apply(target, "chat_guest_set", {"chat_id": chat_id, "guest": guest})


async def cast_ids(source: Readable, chat_id: str) -> list[str]:
    """The characters present in the story: its host first, then in the order they came."""
    rows = await fetch_all(
        source,
        """SELECT sc.character_id FROM story_cast sc JOIN chats c ON c.chat_id = sc.chat_id
           WHERE sc.chat_id = ? ORDER BY sc.character_id = c.host DESC, sc.joined_seq, sc.character_id""",
        (chat_id,),
    )
    return [r["character_id"] for r in rows]


async def invite_character(target: Writable, chat_id: str, character_id: str) -> int:
    """`character_id` comes into the story; returns the event's seq (what keys its entrance)."""
    event = await append_and_apply(target, "character_invited", {"chat_id": chat_id, "character_id": character_id})
    return event.seq


async def dismiss_character(target: Writable, chat_id: str, character_id: str) -> None:
    await append_and_apply(target, "character_dismissed", {"chat_id": chat_id, "character_id": character_id})


async def set_note(target: Writable, chat_id: str, text: str) -> None:
    """The story's standing note ("" removes it)."""
    await append_and_apply(target, "story_note_set", {"chat_id": chat_id, "text": text})


async def get_clock(source: Readable, chat_id: str) -> datetime:
    return (await require_chat(source, chat_id)).clock


async def set_clock(target: Writable, chat_id: str, clock: datetime, reason: str = "") -> None:
    await append_and_apply(target, "clock_set", {"chat_id": chat_id, "clock": clock, "reason": reason})


async def advance_clock(target: Writable, chat_id: str, delta: timedelta, reason: str = "") -> datetime:
    """Move the chat clock by `delta` (read and write in one transaction); returns the new time."""
    async with writing(target) as tx:
        new_clock = await get_clock(tx, chat_id) + delta
        await set_clock(tx, chat_id, new_clock, reason)
    return new_clock.replace(microsecond=0)


# --- scenes ---------------------------------------------------------------------------


async def open_scene(
    target: Writable,
    chat_id: str,
    *,
    kind: Literal["main", "meanwhile"] = "main",
    title: str = "",
    present: Iterable[str] = (),
) -> Scene:
    """Open a scene at the chat clock; a second open main scene raises IllegalTransitionError."""
    async with writing(target) as tx:
        event = await append_and_apply(tx, "scene_opened", {
            "chat_id": chat_id, "scene_kind": kind, "title": title, "present": list(present),
        })
        assert event.ref is not None
        return await require_scene(tx, event.ref)


async def close_scene(target: Writable, chat_id: str, scene_id: int, *, cause_turn_id: int | None = None) -> Scene:
    """Close a scene at the chat clock (`cause_turn_id`: the line that asked for it); closing
    a closed scene changes nothing."""
    async with writing(target) as tx:
        scene = await require_scene(tx, scene_id)
        if scene.chat_id != chat_id:
            raise SceneNotFoundError(scene_id, f"it belongs to another chat than {chat_id!r}")
        if scene.is_open:
            await append_and_apply(tx, "scene_closed", {
                "chat_id": chat_id, "scene_id": scene_id, "cause_turn_id": cause_turn_id,
            })
            scene = await require_scene(tx, scene_id)
        return scene


async def scene_closed_by(source: Readable, chat_id: str, turn_id: int) -> bool:
    """Whether the player's line `turn_id` closed a scene (it asked for the close in words)."""
    row = await fetch_one(
        source, "SELECT 1 FROM scenes WHERE chat_id = ? AND closed_by_turn = ? LIMIT 1", (chat_id, turn_id)
    )
    return row is not None


async def scene_closed_by_line(source: Readable, chat_id: str, turn_id: int) -> Scene | None:
    """The scene the player's line `turn_id` closed (asked for in words), if it is still closed."""
    row = await fetch_one(
        source, "SELECT * FROM scenes WHERE chat_id = ? AND closed_by_turn = ? AND closed_at IS NOT NULL LIMIT 1",
        (chat_id, turn_id),
    )
    return None if row is None else _scene(row)


async def clock_before_change(source: Readable, chat_id: str, before_seq: int) -> datetime | None:
    """The clock as it was before the chat's last clock change preceding event `before_seq`
    (None: the clock had not changed by then)."""
    row = await fetch_one(
        source, "SELECT clock_before FROM clock_changes WHERE chat_id = ? AND seq < ? ORDER BY seq DESC LIMIT 1",
        (chat_id, before_seq),
    )
    return None if row is None else datetime.fromisoformat(row["clock_before"])


async def empty_main_scenes(source: Readable, chat_id: str, scene_ids: Iterable[int]) -> list[Scene]:
    """Those of the main scenes `scene_ids` that hold no shown turn and were not withdrawn."""
    rows = await fetch_all(
        source,
        f"""SELECT * FROM scenes s WHERE s.chat_id = ? AND s.kind = 'main' AND s.withdrawn = 0
             AND s.scene_id IN (SELECT CAST(j.value AS BIGINT) FROM {json_items(dialect_of(source), '?', 'j')})
             AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.scene_id = s.scene_id AND t.superseded_by IS NULL)
           ORDER BY s.scene_id""",
        (chat_id, json.dumps(sorted(scene_ids))),
    )
    return [_scene(r) for r in rows]


async def withdraw_scene(target: Writable, chat_id: str, scene_id: int) -> None:
    await append_and_apply(target, "scene_withdrawn", {"chat_id": chat_id, "scene_id": scene_id})


async def reopen_scene(target: Writable, chat_id: str, scene_id: int) -> None:
    await append_and_apply(target, "scene_reopened", {"chat_id": chat_id, "scene_id": scene_id})


async def join_scene(target: Writable, scene: Scene, ident: str, *, player: bool) -> None:
    """`ident` is present in the scene from now on: a player after the players present, a character
    last (so a scene's presence reads the same however its people came in: players, then characters)."""
    if ident in scene.present:
        return
    ever_played = {p.player_id for p in await player_state.story_players(target, scene.chat_id)}
    players = [p for p in scene.present if p in ever_played]
    others = [p for p in scene.present if p not in players]
    present = [*players, ident, *others] if player else [*players, *others, ident]
    await set_scene_presence(target, scene.chat_id, scene.scene_id, present)


async def set_scene_presence(target: Writable, chat_id: str, scene_id: int, present: Iterable[str]) -> None:
    await append_and_apply(target, "scene_presence_set", {
        "chat_id": chat_id, "scene_id": scene_id, "present": list(present),
    })


async def get_scene(source: Readable, scene_id: int) -> Scene | None:
    row = await fetch_one(source, "SELECT * FROM scenes WHERE scene_id = ?", (scene_id,))
    return None if row is None else _scene(row)


async def require_scene(source: Readable, scene_id: int) -> Scene:
    scene = await get_scene(source, scene_id)
    if scene is None:
        raise SceneNotFoundError(scene_id)
    return scene


async def current_scene(source: Readable, chat_id: str) -> Scene | None:
    """The chat's open main scene, if any."""
    row = await fetch_one(
        source, "SELECT * FROM scenes WHERE chat_id = ? AND kind = 'main' AND closed_at IS NULL", (chat_id,)
    )
    return None if row is None else _scene(row)


async def latest_main_scene(source: Readable, chat_id: str) -> Scene | None:
    """The chat's newest main scene, open or closed."""
    row = await fetch_one(
        source, "SELECT * FROM scenes WHERE chat_id = ? AND kind = 'main' ORDER BY scene_id DESC LIMIT 1", (chat_id,)
    )
    return None if row is None else _scene(row)


async def list_scenes(source: Readable, chat_id: str, *, open_only: bool = False) -> list[Scene]:
    """The chat's scenes, oldest first (withdrawn ones left out)."""
    sql = "SELECT * FROM scenes WHERE chat_id = ? AND withdrawn = 0" + (" AND closed_at IS NULL" if open_only else "")
    return [_scene(r) for r in await fetch_all(source, sql + " ORDER BY scene_id", (chat_id,))]


async def has_open_scene(source: Readable, chat_id: str) -> bool:
    return bool(await fetch_count(
        source, "SELECT count(*) FROM scenes WHERE chat_id = ? AND kind = 'main' AND closed_at IS NULL", (chat_id,)
    ))


async def scenes_owing_summaries(source: Readable, chat_id: str) -> list[tuple[int, str]]:
    """(scene id, character id) for each closed main scene of the chat and each present registered
    character that has no live summary of it, in scene order then presence order."""
    rows = await fetch_all(
        source,
        f"""SELECT s.scene_id, p.value AS pov FROM scenes s, {json_items(dialect_of(source), 's.present', 'p')}
           WHERE s.chat_id = ? AND s.kind = 'main' AND s.closed_at IS NOT NULL AND s.withdrawn = 0
             AND p.value IN (SELECT character_id FROM characters)
             AND NOT EXISTS (SELECT 1 FROM memories m WHERE m.scene_id = s.scene_id AND m.pov = p.value
                             AND m.kind = 'summary' AND m.summary_of = 'scene' AND m.retracted = 0)
           ORDER BY s.scene_id, p.key""",
        (chat_id,),
    )
    return [(row["scene_id"], row["pov"]) for row in rows]
