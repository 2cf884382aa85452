"""`!lore` and `!lore import`: the story's lorebook listed for the player, world info added from an
uploaded file (plain or encrypted), and every refusal answered with its reason.

The engine is the real one on a temporary database; the Matrix client is a stand-in that
serves the replied-to events and their files.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nio import DownloadError, RoomEncryptedFile, RoomGetEventError, RoomMessageFile, RoomMessageText
from nio.crypto.attachments import encrypt_attachment

from adapter.matrix.handlers.registry import REGISTRY, handle_command
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta
from core.engine import Engine
from core.llm import FakeLLM

DATA = Path(__file__).resolve().parents[2] / "data"
GULLROCK = (DATA / "world_info_gullrock.json").read_bytes()
ALICE = "@alice:localhost"


def file_event(event_id: str, name: str, url: str, size: int | None = None) -> RoomMessageFile:
    info = {"mimetype": "application/json"} | ({"size": size} if size is not None else {})
    return RoomMessageFile.from_dict({
        "type": "m.room.message", "sender": ALICE, "event_id": event_id, "origin_server_ts": 1,
        "content": {"msgtype": "m.file", "body": name, "url": url, "info": info},
    })


def encrypted_file_event(event_id: str, name: str, url: str, keys: dict[str, Any]) -> RoomEncryptedFile:
    return RoomEncryptedFile.from_dict({
        "type": "m.room.message", "sender": ALICE, "event_id": event_id, "origin_server_ts": 1,
        "content": {"msgtype": "m.file", "body": name, "file": {"url": url, **keys}},
    })


class StandInClient:
    """What `fetch_uploaded_file` asks of nio's client: an event by id, and a file by content URI."""

    def __init__(self) -> None:
        self.events: dict[str, Any] = {}
        self.files: dict[str, bytes] = {}

    def upload(self, event_id: str, name: str, data: bytes, *, encrypted: bool = False, size: int | None = None) -> None:
        url = f"mxc://localhost/{event_id.strip('$')}"
        if encrypted:
            data, keys = encrypt_attachment(data)
            self.events[event_id] = encrypted_file_event(event_id, name, url, keys)
        else:
            self.events[event_id] = file_event(event_id, name, url, size)
        self.files[url] = data

    async def room_get_event(self, room_id: str, event_id: str) -> Any:
        found = self.events.get(event_id)
        return SimpleNamespace(event=found) if found is not None else RoomGetEventError("no such event")

    async def download(self, mxc: str) -> Any:
        data = self.files.get(mxc)
        return SimpleNamespace(body=data) if data is not None else DownloadError("gone")


class Ctx:
    def __init__(self, engine: Engine, client: StandInClient) -> None:
        self.engine, self.client = engine, client


@pytest.fixture
async def room(tmp_path: Path):
    engine = await Engine.open(tmp_path / "engine.sqlite3", FakeLLM())
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    chat = await engine.create_chat(owner=ALICE, host=maren.character_id, guest=ilse.character_id)
    meta = RoomMeta("!story", RoomType.STORY, ALICE, "!space", chat.chat_id, "mx-1")
    yield engine, StandInClient(), meta
    await engine.close()


async def answer(engine: Engine, client: StandInClient, meta: RoomMeta, text: str, reply_to: str | None = None) -> str:
    (sent,) = await handle_command(Ctx(engine, client), meta, text, "$cmd", ALICE, reply_to)  # type: ignore[arg-type]
    return sent.content["body"]


async def test_lore_lists_each_entry_with_who_knows_it(room) -> None:
    engine, client, meta = room
    assert "**Lore of this story:** 3 entries" in await answer(engine, client, meta, "!lore")  # the cards' books
    client.upload("$wi", "world_info_gullrock.json", GULLROCK)
    await answer(engine, client, meta, "!lore import", reply_to="$wi")

    body = await answer(engine, client, meta, "!lore")
    lines = body.splitlines()
    assert lines[0] == "**Lore of this story:** 12 entries"  # 3 from the cards' books, 9 from the file
    assert "*Post routes (Ilse Varga of the Northern Post's card)*" in lines
    assert "- **shipyard**: called up by `shipyard`; known only to Ilse Varga of the Northern Post" in lines
    assert "- **Gullrock (always)**: always in mind; known to everyone" in lines
    assert "- **The lamp room**: called up by `lamp`, `lantern`, `lens`; known to everyone" in lines
    assert any(line.startswith("- **Maren's secret**") and line.endswith("known only to Maren Ashdown") for line in lines)
    assert any("Mainland rumour" in line and line.endswith("known to everyone but Maren Ashdown") for line in lines)
    assert "- ~~**Ghost story (switched off)**~~ (switched off)" in lines
    assert "Usage" in await answer(engine, client, meta, "!lore everything")


async def test_lore_import_reads_a_plain_or_an_encrypted_upload(room) -> None:
    engine, client, meta = room
    client.upload("$plain", "world_info_gullrock.json", GULLROCK)
    body = await answer(engine, client, meta, "!lore import", reply_to="$plain")
    assert body.startswith("Added **world_info_gullrock** to the story's lore: 9 entries (7 known to everyone, 2 only to some).")

    client.upload("$secret", "world_info_gullrock.json", GULLROCK, encrypted=True)
    body = await answer(engine, client, meta, "!lore import", reply_to="$secret")
    assert "9 entries" in body and "replaces the book of the same name" in body
    assert len([e for e in await engine.lore(meta.chat_id) if e.book == "world_info_gullrock"]) == 9


async def test_lore_import_refusals_say_why(room) -> None:
    engine, client, meta = room
    cards_only = await engine.lore(meta.chat_id)
    assert "reply to it with `!lore import`" in await answer(engine, client, meta, "!lore import")
    assert "cannot see the message" in await answer(engine, client, meta, "!lore import", reply_to="$nothing")

    client.events["$text"] = RoomMessageText.from_dict({
        "type": "m.room.message", "sender": ALICE, "event_id": "$text", "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": "just words"},
    })
    assert "Reply to an uploaded file (a SillyTavern world info file, .json)" in await answer(
        engine, client, meta, "!lore import", reply_to="$text")

    client.upload("$huge", "huge.json", b"{}", size=3 * 1024 * 1024)
    assert "too large (over 2 MiB)" in await answer(engine, client, meta, "!lore import", reply_to="$huge")
    client.upload("$huge2", "huge.json", b" " * (2 * 1024 * 1024 + 10))
    assert "too large (over 2 MiB)" in await answer(engine, client, meta, "!lore import", reply_to="$huge2")

    client.upload("$junk", "notes.json", b"{not json")
    body = await answer(engine, client, meta, "!lore import", reply_to="$junk")
    assert "not a world info file I can read: the file is not JSON" in body

    client.upload("$card", "nyx.json", json.dumps({"spec": "chara_card_v2", "data": {"name": "Nyx"}}).encode())
    assert "character card" in await answer(engine, client, meta, "!lore import", reply_to="$card")
    client.upload("$other", "settings.json", b'{"theme": "dark"}')
    assert "not SillyTavern world info" in await answer(engine, client, meta, "!lore import", reply_to="$other")
    assert await engine.lore(meta.chat_id) == cards_only


def test_lore_is_a_story_room_command() -> None:
    assert REGISTRY["lore"].rooms == frozenset({"chat"})
