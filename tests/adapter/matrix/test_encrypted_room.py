"""With `encryption = true` (the default) story rooms are encrypted, and the bot reads and answers there.

The player is a real E2EE client (matrix-nio with vodozemac), as Element would be.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest
from nio import AsyncClient, AsyncClientConfig, MegolmEvent, RoomMessageText, RoomSendResponse
from nio.api import Api

from tests.support.bot_process import BotProcess, write_config
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


async def e2ee_player(synapse: SynapseServer, store: Path) -> AsyncClient:
    account = synapse.register("player")
    store.mkdir()
    client = AsyncClient(
        synapse.url, account.user_id, device_id=account.device_id, store_path=str(store), config=AsyncClientConfig(encryption_enabled=True)
    )
    client.restore_login(account.user_id, account.device_id, account.access_token)
    await client.keys_upload()
    await client.sync(timeout=0, full_state=True)
    return client


def line_status(engine_db: Path, event_id: str) -> str | None:
    """"answered", "owed", or None when the engine never received the line."""
    with sqlite3.connect(engine_db) as conn:
        row = conn.execute("SELECT answered_seq FROM lines WHERE source_id = ?", (event_id,)).fetchone()
    return None if row is None else "owed" if row[0] is None else "answered"


async def sync_until(client: AsyncClient, predicate, timeout_s: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if result:
            return result
        await client.sync(timeout=500)
        if client.should_query_keys:
            await client.keys_query()
    raise AssertionError("timed out")


async def test_an_encrypted_story_room_is_answered_encrypted(synapse: SynapseServer, tmp_path: Path) -> None:
    bot_account = synapse.register("rpbot")
    config = write_config(
        tmp_path / "rpbot.toml",
        homeserver=synapse.url,
        user_id=bot_account.user_id,
        password=bot_account.password,
        allowed_users=["@player-*:localhost"],
        data_dir=tmp_path / "data",
        encryption=True,
    )
    bot = BotProcess(config, tmp_path / "rpbot.log")
    await asyncio.to_thread(bot.start)
    player = await e2ee_player(synapse, tmp_path / "player-store")
    received: list[tuple[str, object]] = []
    player.add_event_callback(lambda room, event: received.append((room.room_id, event)), (RoomMessageText, MegolmEvent))
    try:
        await player.room_create(invite=[bot_account.user_id], is_direct=True)
        # nio keeps no room type for invites
        space_id = await sync_until(
            player, lambda: next((r for r, room in player.invited_rooms.items() if (room.name or "").startswith("Stories of")), None)
        )
        await player.join(space_id)
        rooms = await sync_until(
            player,
            lambda: (
                [r for r in player.rooms.get(space_id).children] if space_id in player.rooms and len(player.rooms[space_id].children) == 2 else None
            ),
        )
        story_id = None
        for room_id in rooms:
            await player.join(room_id)
        await player.sync(timeout=0)
        story_id = next(r for r in rooms if player.rooms[r].name != "Lobby")
        assert player.rooms[story_id].encrypted

        greeting = await sync_until(player, lambda: [e for r, e in received if r == story_id and isinstance(e, RoomMessageText)])
        assert greeting[0].decrypted and greeting[0].sender == bot_account.user_id

        await player.room_send(story_id, "m.room.message", {"msgtype": "m.text", "body": "Is anyone here?"}, ignore_unverified_devices=True)

        def reply() -> list[RoomMessageText]:
            return [
                e for r, e in received
                if r == story_id and isinstance(e, RoomMessageText) and e.sender == bot_account.user_id and e is not greeting[0]
            ]

        answers = await sync_until(player, reply)
        assert answers[0].decrypted  # it came encrypted and the player could read it
        assert not [e for r, e in received if isinstance(e, MegolmEvent)], "the player could not decrypt something"

        # Keys survive a restart: same device, same keys, still reads and answers.
        await asyncio.to_thread(bot.stop)
        await asyncio.to_thread(bot.start)
        await player.room_send(story_id, "m.room.message", {"msgtype": "m.text", "body": "Still there?"}, ignore_unverified_devices=True)
        await sync_until(player, lambda: len(reply()) >= 2)
        assert not [e for r, e in received if isinstance(e, MegolmEvent)], "the player could not decrypt something after the restart"

        # A line whose key arrives late is kept and answered once the key comes, not dropped.
        await player.joined_members(story_id)
        player.olm.rotate_outbound_group_session(story_id)
        session = player.olm.outbound_group_sessions[story_id]
        session.shared = True  # pretend: the key is withheld from the bot for now
        key_at_index_0 = session.session_key

        class KeyAsBeforeTheMessage(type(session)):  # what a real late share carries: the key from index 0
            @property
            def session_key(self) -> str:
                return key_at_index_0

        session.__class__ = KeyAsBeforeTheMessage
        message_type, content = player.encrypt(story_id, "m.room.message", {"msgtype": "m.text", "body": "A line with a late key."})
        method, path, data = Api.room_send(player.access_token, story_id, message_type, content, uuid.uuid4())
        late = await player._send(RoomSendResponse, method, path, data, (story_id,))
        await asyncio.to_thread(bot.wait_for_log, "waiting for the key", 20)
        assert line_status(tmp_path / "data" / "engine.sqlite3", late.event_id) is None  # not answered blind
        session.shared = False
        await player.share_group_session(story_id, ignore_unverified_devices=True)
        await sync_until(player, lambda: line_status(tmp_path / "data" / "engine.sqlite3", late.event_id) == "answered")
    finally:
        await player.close()
        await asyncio.to_thread(bot.stop)
    assert "could not decrypt" not in bot.log_text()
