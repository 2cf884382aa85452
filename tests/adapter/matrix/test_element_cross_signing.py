"""A player on a client that behaves as Element does (only devices signed by their owner) talks with the bot.

Element shares room keys only with cross-signed devices and refuses to show messages from
other devices. The bot cross-signs its device at start; these tests show that such a player
gets the greeting and the replies, decrypted and from a device the bot's account signed,
after a restart and after the bot's session is lost (a new device) too; that a client
allowing all devices works as before; and that with the bot's cross-signing off, the strict
client refuses the bot's messages and the bot never gets the key of the player's line.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import httpx
import pytest

from adapter.matrix.cross_signing import KEYS_FILE, RECOVERY_KEY_FILE, AccountKeys
from adapter.matrix.secret_storage import decode_recovery_key, decrypt_secret, key_matches
from tests.support.bot_process import BotProcess, write_config
from tests.support.element_client import UNSIGNED_SENDER_DEVICE, ElementLikeClient
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


def start_bot(synapse: SynapseServer, tmp_path: Path, *, cross_signing: bool = True) -> tuple[BotProcess, str, Path]:
    account = synapse.register("rpbot")
    data_dir = tmp_path / "data"
    config = write_config(
        tmp_path / "rpbot.toml",
        homeserver=synapse.url,
        user_id=account.user_id,
        password=account.password,
        allowed_users=["@player-*:localhost"],
        data_dir=data_dir,
        encryption=True,
    )
    if not cross_signing:
        config.write_text(config.read_text().replace("encryption = true", "encryption = true\ncross_signing = false"))
    return BotProcess(config, tmp_path / "rpbot.log").start(), account.user_id, data_dir


async def onboard(player: ElementLikeClient, bot_id: str) -> str:
    """Invite the bot, join the Space it makes and its rooms; return the story room."""
    await player.nio.room_create(invite=[bot_id], is_direct=True)
    space_id = await player.sync_until(
        lambda: next((r for r, room in player.nio.invited_rooms.items() if (room.name or "").startswith("Stories of")), None), what="the Space invite"
    )
    await player.nio.join(space_id)
    rooms = await player.sync_until(
        lambda: list(player.nio.rooms[space_id].children) if space_id in player.nio.rooms and len(player.nio.rooms[space_id].children) == 2 else None,
        what="the lobby and story room",
    )
    for room_id in rooms:
        await player.nio.join(room_id)
    await player.sync(timeout_ms=0)
    story = next(r for r in rooms if player.nio.rooms[r].name != "Lobby")
    assert player.nio.rooms[story].encrypted
    return story


def bot_device(data_dir: Path) -> str:
    return json.loads((data_dir / "session.json").read_text())["device_id"]


async def talk(player: ElementLikeClient, story: str, bot_id: str, line: str, device: str) -> None:
    """Send a line; the bot's answer must be shown, decrypted, sent from the bot's `device` (which its owner signed)."""
    before = {r.event_id for r in player.received}
    await player.send_text(story, line)
    await player.sync_until(
        lambda: [r for r in player.shown(story, bot_id) if r.event_id not in before and r.sender_device == device],
        what=f"the bot's answer to {line!r} from device {device}",
    )


async def test_a_strict_element_player_talks_with_the_bot_across_restarts_and_a_new_device(synapse: SynapseServer, tmp_path: Path) -> None:
    bot, bot_id, data_dir = await asyncio.to_thread(start_bot, synapse, tmp_path)
    player = await ElementLikeClient(synapse.url, synapse.register("player"), tmp_path / "player").start()
    try:
        story = await onboard(player, bot_id)
        greeting = await player.sync_until(lambda: player.shown(story, bot_id), what="the greeting")
        assert greeting[0].sender_device == bot_device(data_dir)
        await talk(player, story, bot_id, "Is anyone here?", bot_device(data_dir))

        # The keys are kept, private, and reused: a restart uploads nothing new.
        keys_file = data_dir / "crypto" / KEYS_FILE
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        saved_keys = keys_file.read_text()
        await asyncio.to_thread(bot.stop)
        await asyncio.to_thread(bot.start)
        assert keys_file.read_text() == saved_keys
        await talk(player, story, bot_id, "Still there?", bot_device(data_dir))

        # The session is lost: a new device, signed at start with the same keys.
        old_device = bot_device(data_dir)
        await asyncio.to_thread(bot.stop)
        (data_dir / "session.json").unlink()
        await asyncio.to_thread(bot.start)
        assert bot_device(data_dir) != old_device and keys_file.read_text() == saved_keys
        await player.sync_until(lambda: bot_device(data_dir) in player.devices_of(bot_id), what="the bot's new device in its device list")
        await talk(player, story, bot_id, "And now?", bot_device(data_dir))
        assert not player.refused(story, bot_id), player.refused(story, bot_id)
        assert not player.refused(story, player.user_id), "the player's own lines show as from a signed device"
    finally:
        await player.close()
        await asyncio.to_thread(bot.stop)
    assert bot.log_text().count("published cross-signing keys") == 1
    assert "not cross-signed" not in bot.log_text()


async def test_the_recovery_key_opens_the_bot_accounts_secret_storage(synapse: SynapseServer, tmp_path: Path) -> None:
    """What Element does with the recovery key: find the default key, check it, decrypt the master key, compare."""
    bot, bot_id, data_dir = await asyncio.to_thread(start_bot, synapse, tmp_path)
    bot.stop()
    recovery_file = data_dir / RECOVERY_KEY_FILE
    assert stat.S_IMODE(recovery_file.stat().st_mode) == 0o600
    recovery_key = next(line.strip() for line in recovery_file.read_text().splitlines() if line.startswith("    "))
    assert recovery_key in bot.log_text()  # printed once on the console
    token = json.loads((data_dir / "session.json").read_text())["access_token"]
    async with httpx.AsyncClient(base_url=synapse.url, headers={"Authorization": f"Bearer {token}"}) as http:
        async def account_data(event_type: str) -> dict:
            return (await http.get(f"/_matrix/client/v3/user/{bot_id}/account_data/{event_type}")).json()

        key_id = (await account_data("m.secret_storage.default_key"))["key"]
        storage_key = decode_recovery_key(recovery_key)
        assert key_matches(storage_key, await account_data(f"m.secret_storage.key.{key_id}"))
        master_seed = decrypt_secret(storage_key, "m.cross_signing.master", (await account_data("m.cross_signing.master"))["encrypted"][key_id])
        account = await AccountKeys(http, bot_id).refresh()
    from adapter.matrix.signatures import public_key, signing_key_from_seed

    assert public_key(signing_key_from_seed(master_seed)) == account.public("master")


async def test_a_client_allowing_all_devices_talks_with_a_bot_without_cross_signing(synapse: SynapseServer, tmp_path: Path) -> None:
    bot, bot_id, data_dir = await asyncio.to_thread(start_bot, synapse, tmp_path, cross_signing=False)
    player = await ElementLikeClient(synapse.url, synapse.register("player"), tmp_path / "player", strict=False).start()
    try:
        story = await onboard(player, bot_id)
        await player.sync_until(lambda: player.shown(story, bot_id), what="the greeting")
        await talk(player, story, bot_id, "Is anyone here?", bot_device(data_dir))
    finally:
        await player.close()
        await asyncio.to_thread(bot.stop)


async def test_without_cross_signing_a_strict_client_and_the_bot_cannot_talk(synapse: SynapseServer, tmp_path: Path) -> None:
    bot, bot_id, _ = await asyncio.to_thread(start_bot, synapse, tmp_path, cross_signing=False)
    player = await ElementLikeClient(synapse.url, synapse.register("player"), tmp_path / "player").start()
    try:
        story = await onboard(player, bot_id)
        refused = await player.sync_until(lambda: player.refused(story, bot_id), what="the greeting")
        assert refused[0].problem == UNSIGNED_SENDER_DEVICE  # it came and decrypted, but Element will not show it
        await player.send_text(story, "Is anyone here?")
        await asyncio.to_thread(bot.wait_for_log, "waiting for the key", 30)  # the player's client withheld it
        await asyncio.sleep(5)
        await player.sync()
        assert not player.shown(story, bot_id)
    finally:
        await player.close()
        await asyncio.to_thread(bot.stop)
