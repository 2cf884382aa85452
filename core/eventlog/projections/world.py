"""Projectors for the world: characters, chats (their note, their players and their personas), the
chat clock (with its history, `clock_changes`, so a time skip can be taken back) and scenes.

A chat's owner is its first player (`story_players`, from `chat_created`); others join and
leave.  Its host is its first character (`story_cast`); others come (a guest at creation or
`chat_guest_set`, an invitation) and go; `chats.guest` is the first of them still present.
Scene presence names players and characters ("you", in an older story's events, is its owner).
"""

from __future__ import annotations

import json

from core.errors import CharacterNotFoundError, IllegalTransitionError, SceneNotFoundError
from core.eventlog.events import (
    CharacterDismissed,
    CharacterInvited,
    CharacterRegistered,
    CharacterShared,
    ChatCreated,
    ChatGuestSet,
    ChatTitleSet,
    ClockSet,
    PersonaSet,
    PlayerJoined,
    PlayerLeft,
    SceneClosed,
    SceneOpened,
    ScenePresenceSet,
    SceneReopened,
    SceneWithdrawn,
    StoryNoteSet,
    StoryPersonaSet,
)
from core.eventlog.projections.base import (
    as_players,
    chat_clock,
    fetch_one,
    json_list,
    projects,
    require_known,
    require_row,
    story_time_text,
)
from core.storage import Connection, Row


async def _require_character(conn: Connection, character_id: str) -> None:
    if await fetch_one(conn, "SELECT 1 FROM characters WHERE character_id = ?", (character_id,)) is None:
        raise CharacterNotFoundError(character_id)


@projects(PersonaSet)
async def _persona_set(conn: Connection, seq: int, p: PersonaSet) -> None:
    await conn.execute(
        """INSERT INTO personas (owner, name, description) VALUES (?, ?, ?)
           ON CONFLICT (owner) DO UPDATE SET name = excluded.name, description = excluded.description""",
        (p.owner, p.name, p.description),
    )


@projects(CharacterRegistered)
async def _character_registered(conn: Connection, seq: int, p: CharacterRegistered) -> None:
    await conn.execute(
        """INSERT INTO characters (
               character_id, name, description, personality, scenario, first_mes, mes_example,
               system_prompt, post_history_instructions, creator_notes, alternate_greetings, tags,
               creator, character_version, spec, raw_card, registered_seq, owner)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (character_id) DO UPDATE SET
               name = excluded.name, description = excluded.description,
               personality = excluded.personality, scenario = excluded.scenario,
               first_mes = excluded.first_mes, mes_example = excluded.mes_example,
               system_prompt = excluded.system_prompt,
               post_history_instructions = excluded.post_history_instructions,
               creator_notes = excluded.creator_notes,
               alternate_greetings = excluded.alternate_greetings, tags = excluded.tags,
               creator = excluded.creator, character_version = excluded.character_version,
               spec = excluded.spec, raw_card = excluded.raw_card,
               registered_seq = excluded.registered_seq, owner = excluded.owner""",
        (
            p.character_id, p.name, p.description, p.personality, p.scenario, p.first_mes,
            p.mes_example, p.system_prompt, p.post_history_instructions, p.creator_notes,
            json_list(p.alternate_greetings), json_list(p.tags), p.creator, p.character_version,
            p.spec, None if p.raw_card is None else json.dumps(p.raw_card, ensure_ascii=False),
            seq, p.owner,
        ),
    )
    return None


@projects(CharacterShared)
async def _character_shared(conn: Connection, seq: int, p: CharacterShared) -> None:
    await _require_character(conn, p.character_id)
    await conn.execute("UPDATE characters SET shared = 1 WHERE character_id = ?", (p.character_id,))
    return None


@projects(ChatCreated)
async def _chat_created(conn: Connection, seq: int, p: ChatCreated) -> None:
    await _require_character(conn, p.host)
    if p.guest is not None:
        await _require_character(conn, p.guest)
    row = await fetch_one(conn, "SELECT COALESCE(MAX(chat_num), 0) + 1 AS next FROM chats")
    assert row is not None  # an aggregate without GROUP BY always returns one row
    await conn.execute(
        """INSERT INTO chats (chat_id, chat_num, owner, host, guest, title, clock, scenario, created_seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (p.chat_id, row["next"], p.owner, p.host, p.guest, p.title, story_time_text(p.clock), p.scenario, seq),
    )
    await conn.execute(
        "INSERT INTO story_players (chat_id, player, joined_seq, active) VALUES (?, ?, ?, 1)", (p.chat_id, p.owner, seq)
    )
    for character_id in [p.host] + ([p.guest] if p.guest else []):
        await _come_in(conn, p.chat_id, character_id, seq)
    return None


async def _come_in(conn: Connection, chat_id: str, character_id: str, seq: int) -> None:
    await conn.execute(
        "INSERT INTO story_cast (chat_id, character_id, joined_seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (chat_id, character_id, seq),
    )


async def _first_guest(conn: Connection, chat_id: str) -> None:
    """`chats.guest`: the first character to have come, after the host, that is still present."""
    await conn.execute(
        """UPDATE chats SET guest = (SELECT sc.character_id FROM story_cast sc
                                     WHERE sc.chat_id = chats.chat_id AND sc.character_id != chats.host
                                     ORDER BY sc.joined_seq, sc.character_id LIMIT 1)
           WHERE chat_id = ?""",
        (chat_id,),
    )


async def _present_row(conn: Connection, chat_id: str, character_id: str) -> Row | None:
    return await fetch_one(
        conn,
        """SELECT sc.character_id = c.host AS is_host FROM story_cast sc JOIN chats c ON c.chat_id = sc.chat_id
           WHERE sc.chat_id = ? AND sc.character_id = ?""",
        (chat_id, character_id),
    )


@projects(CharacterInvited)
async def _character_invited(conn: Connection, seq: int, p: CharacterInvited) -> None:
    await _require_character(conn, p.character_id)
    if await _present_row(conn, p.chat_id, p.character_id) is not None:
        raise IllegalTransitionError("character", p.character_id, "present", "invited again")
    await _come_in(conn, p.chat_id, p.character_id, seq)
    await _first_guest(conn, p.chat_id)
    return None


@projects(CharacterDismissed)
async def _character_dismissed(conn: Connection, seq: int, p: CharacterDismissed) -> None:
    row = await _present_row(conn, p.chat_id, p.character_id)
    if row is None or row["is_host"]:
        raise IllegalTransitionError("character", p.character_id, "the host" if row else "absent", "dismissed")
    await conn.execute(
        "DELETE FROM story_cast WHERE chat_id = ? AND character_id = ?", (p.chat_id, p.character_id)
    )
    await _first_guest(conn, p.chat_id)
    return None


async def _player_row(conn: Connection, chat_id: str, player: str) -> Row | None:
    return await fetch_one(
        conn,
        """SELECT sp.active, sp.player = c.owner AS is_owner FROM story_players sp JOIN chats c ON c.chat_id = sp.chat_id
           WHERE sp.chat_id = ? AND sp.player = ?""",
        (chat_id, player),
    )


@projects(PlayerJoined)
async def _player_joined(conn: Connection, seq: int, p: PlayerJoined) -> None:
    await chat_clock(conn, p.chat_id)
    row = await _player_row(conn, p.chat_id, p.player)
    if row is not None and row["active"]:
        raise IllegalTransitionError("player", p.player, "playing", "joined again")
    if await fetch_one(conn, "SELECT 1 FROM characters WHERE character_id = ?", (p.player,)) is not None:
        raise IllegalTransitionError("player", p.player, "a character's id", "a player")
    await conn.execute(
        """INSERT INTO story_players (chat_id, player, joined_seq, active) VALUES (?, ?, ?, 1)
           ON CONFLICT (chat_id, player) DO UPDATE SET active = 1""",
        (p.chat_id, p.player, seq),
    )
    return None


@projects(PlayerLeft)
async def _player_left(conn: Connection, seq: int, p: PlayerLeft) -> None:
    row = await _player_row(conn, p.chat_id, p.player)
    if row is None or not row["active"]:
        raise IllegalTransitionError("player", p.player, "not playing", "left")
    if row["is_owner"]:
        raise IllegalTransitionError("player", p.player, "the story's owner", "left")
    await conn.execute(
        "UPDATE story_players SET active = 0 WHERE chat_id = ? AND player = ?", (p.chat_id, p.player)
    )
    return None


@projects(ChatTitleSet)
async def _chat_title_set(conn: Connection, seq: int, p: ChatTitleSet) -> None:
    await conn.execute("UPDATE chats SET title = ? WHERE chat_id = ?", (p.title, p.chat_id))
    return None


@projects(ChatGuestSet)
async def _chat_guest_set(conn: Connection, seq: int, p: ChatGuestSet) -> None:
    if p.guest is not None:
        await _require_character(conn, p.guest)
    await conn.execute(
        """DELETE FROM story_cast WHERE chat_id = ?
             AND character_id = (SELECT guest FROM chats WHERE chat_id = ? AND guest != host)""",
        (p.chat_id, p.chat_id),
    )
    if p.guest is not None:
        await _come_in(conn, p.chat_id, p.guest, seq)
    await _first_guest(conn, p.chat_id)
    return None


@projects(ClockSet)
async def _clock_set(conn: Connection, seq: int, p: ClockSet) -> None:
    before = await chat_clock(conn, p.chat_id)
    await conn.execute("UPDATE chats SET clock = ? WHERE chat_id = ?", (story_time_text(p.clock), p.chat_id))
    await conn.execute(
        "INSERT INTO clock_changes (seq, chat_id, clock_before, clock) VALUES (?, ?, ?, ?)",
        (seq, p.chat_id, before, story_time_text(p.clock)),
    )
    return None


@projects(StoryNoteSet)
async def _story_note_set(conn: Connection, seq: int, p: StoryNoteSet) -> None:
    await conn.execute("UPDATE chats SET note = ? WHERE chat_id = ?", (p.text, p.chat_id))
    return None


@projects(StoryPersonaSet)
async def _story_persona_set(conn: Connection, seq: int, p: StoryPersonaSet) -> None:
    await conn.execute(
        """INSERT INTO story_personas (chat_id, player, name, description) VALUES (?, ?, ?, ?)
           ON CONFLICT (chat_id, player) DO UPDATE SET name = excluded.name, description = excluded.description""",
        (p.chat_id, p.player, p.name, p.description),
    )
    return None


async def _present(conn: Connection, chat_id: str, present: list[str]) -> list[str]:
    """Who the event says is present, each once ("you" read as the owner), checked to be known."""
    named = list(dict.fromkeys(await as_players(conn, chat_id, present)))
    await require_known(conn, chat_id, named)
    return named


@projects(SceneOpened)
async def _scene_opened(conn: Connection, seq: int, p: SceneOpened) -> int:
    present = await _present(conn, p.chat_id, p.present)
    if p.scene_kind == "main":
        open_main = await fetch_one(
            conn,
            "SELECT scene_id FROM scenes WHERE chat_id = ? AND kind = 'main' AND closed_at IS NULL",
            (p.chat_id,),
        )
        if open_main is not None:
            raise IllegalTransitionError("main scene", open_main["scene_id"], "open", "second open main scene")
    await conn.execute(
        """INSERT INTO scenes (scene_id, chat_id, kind, title, present, started_at)
           VALUES (?, ?, ?, ?, ?, ?)""",
        (seq, p.chat_id, p.scene_kind, p.title, json_list(present), await chat_clock(conn, p.chat_id)),
    )
    return seq


@projects(ScenePresenceSet)
async def _scene_presence_set(conn: Connection, seq: int, p: ScenePresenceSet) -> None:
    await require_row(conn, SceneNotFoundError, "scenes", "scene_id", p.scene_id, p.chat_id)
    present = await _present(conn, p.chat_id, p.present)
    await conn.execute("UPDATE scenes SET present = ? WHERE scene_id = ?", (json_list(present), p.scene_id))
    return None


@projects(SceneClosed)
async def _scene_closed(conn: Connection, seq: int, p: SceneClosed) -> None:
    scene = await require_row(conn, SceneNotFoundError, "scenes", "scene_id", p.scene_id, p.chat_id)
    if scene["closed_at"] is not None:
        raise IllegalTransitionError("scene", p.scene_id, "closed", "closed")
    await conn.execute(
        "UPDATE scenes SET closed_at = ?, closed_by_turn = coalesce(?, closed_by_turn) WHERE scene_id = ?",
        (await chat_clock(conn, p.chat_id), p.cause_turn_id, p.scene_id),
    )
    return None


@projects(SceneReopened)
async def _scene_reopened(conn: Connection, seq: int, p: SceneReopened) -> None:
    scene = await require_row(conn, SceneNotFoundError, "scenes", "scene_id", p.scene_id, p.chat_id)
    if scene["closed_at"] is None:
        raise IllegalTransitionError("scene", p.scene_id, "open", "open")
    if scene["withdrawn"]:
        raise IllegalTransitionError("scene", p.scene_id, "withdrawn", "open")
    if scene["kind"] == "main":
        other = await fetch_one(
            conn,
            "SELECT scene_id FROM scenes WHERE chat_id = ? AND kind = 'main' AND closed_at IS NULL",
            (p.chat_id,),
        )
        if other is not None:
            raise IllegalTransitionError("main scene", other["scene_id"], "open", "second open main scene")
    await conn.execute("UPDATE scenes SET closed_at = NULL, closed_by_turn = NULL WHERE scene_id = ?",
                                (p.scene_id,))
    return None


@projects(SceneWithdrawn)
async def _scene_withdrawn(conn: Connection, seq: int, p: SceneWithdrawn) -> None:
    scene = await require_row(conn, SceneNotFoundError, "scenes", "scene_id", p.scene_id, p.chat_id)
    shown = await fetch_one(
        conn, "SELECT 1 FROM turns WHERE scene_id = ? AND superseded_by IS NULL LIMIT 1", (p.scene_id,)
    )
    if scene["kind"] != "main" or scene["withdrawn"] or shown is not None:
        raise IllegalTransitionError("scene", p.scene_id, "holding shown turns" if shown else scene["kind"], "withdrawn")
    await conn.execute(
        "UPDATE scenes SET withdrawn = 1, closed_at = coalesce(closed_at, ?) WHERE scene_id = ?",
        (await chat_clock(conn, p.chat_id), p.scene_id),
    )
    return None
