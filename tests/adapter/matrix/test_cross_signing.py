"""The bot account's cross-signing on a real Synapse: recovery, lost keys, token-only operators, key sharing.

Element's own client is in test_element_cross_signing.py; here the checks are on what the
homeserver holds and on what plain E2EE clients receive.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from nio import AsyncClient, AsyncClientConfig, MegolmEvent, RoomMessageText

from adapter.matrix.cross_signing import KEYS_FILE, RECOVERY_KEY_FILE, AccountKeys, CrossSigningKeys, sign_device, upload_keys
from adapter.matrix.secret_storage import decode_recovery_key, decrypt_secret, key_matches
from adapter.matrix.signatures import public_key, signing_key_from_seed
from tests.support.bot_process import BotProcess, write_config
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


def bot_config(synapse: SynapseServer, tmp_path: Path, *, access_token: str = "") -> tuple[Path, str, str]:
    account = synapse.register("rpbot")
    config = write_config(
        tmp_path / "rpbot.toml",
        homeserver=synapse.url,
        user_id=account.user_id,
        password=account.password,
        allowed_users=["@player-*:localhost"],
        data_dir=tmp_path / "data",
        encryption=True,
    )
    return config, account.user_id, account.password


def session(data_dir: Path) -> dict[str, str]:
    return json.loads((data_dir / "session.json").read_text())


async def account_keys(synapse: SynapseServer, user_id: str, token: str) -> AccountKeys:
    async with httpx.AsyncClient(base_url=synapse.url, headers={"Authorization": f"Bearer {token}"}) as http:
        return await AccountKeys(http, user_id).refresh()


async def test_the_printed_recovery_key_opens_the_accounts_secret_storage_as_element_does(synapse: SynapseServer, tmp_path: Path) -> None:
    """Element's steps with a recovery key: the default key, its check value, the master key decrypted and compared."""
    config, bot_id, _ = bot_config(synapse, tmp_path)
    bot = await asyncio.to_thread(BotProcess(config, tmp_path / "rpbot.log").start)
    await asyncio.to_thread(bot.stop)
    data_dir = tmp_path / "data"
    recovery_file = data_dir / RECOVERY_KEY_FILE
    assert recovery_file.stat().st_mode & 0o777 == 0o600
    recovery_key = next(line.strip() for line in recovery_file.read_text().splitlines() if line.startswith("    "))
    assert bot.log_text().count(recovery_key) == 1  # printed once, for the operator
    token = session(data_dir)["access_token"]
    async with httpx.AsyncClient(base_url=synapse.url, headers={"Authorization": f"Bearer {token}"}) as http:
        async def account_data(event_type: str) -> dict:
            return (await http.get(f"/_matrix/client/v3/user/{bot_id}/account_data/{event_type}")).json()

        key_id = (await account_data("m.secret_storage.default_key"))["key"]
        storage_key = decode_recovery_key(recovery_key)
        assert key_matches(storage_key, await account_data(f"m.secret_storage.key.{key_id}"))
        for usage in ("master", "self_signing", "user_signing"):
            seed = decrypt_secret(storage_key, f"m.cross_signing.{usage}", (await account_data(f"m.cross_signing.{usage}"))["encrypted"][key_id])
            assert public_key(signing_key_from_seed(seed)) == (await AccountKeys(http, bot_id).refresh()).public(usage)


async def test_keys_on_the_server_the_bot_no_longer_holds_are_replaced_with_the_password(synapse: SynapseServer, tmp_path: Path) -> None:
    config, bot_id, _ = bot_config(synapse, tmp_path)
    bot = await asyncio.to_thread(BotProcess(config, tmp_path / "rpbot.log").start)
    await asyncio.to_thread(bot.stop)
    data_dir = tmp_path / "data"
    before = await account_keys(synapse, bot_id, session(data_dir)["access_token"])
    (data_dir / "crypto" / KEYS_FILE).unlink()  # the keys are lost; the session (device) is kept
    await asyncio.to_thread(bot.start)
    await asyncio.to_thread(bot.stop)
    after = await account_keys(synapse, bot_id, session(data_dir)["access_token"])
    assert after.public("master") != before.public("master")
    assert after.device_signed(session(data_dir)["device_id"])
    assert "does not hold: replacing them" in bot.log_text()
    assert bot.log_text().count("new recovery key") == 2  # the old one opens old keys: a new one is printed


async def test_with_only_an_access_token_the_first_keys_are_published_without_a_password(synapse: SynapseServer, tmp_path: Path) -> None:
    account = synapse.register("rpbot")
    config = write_config(
        tmp_path / "rpbot.toml", homeserver=synapse.url, user_id=account.user_id, password="",
        allowed_users=[], data_dir=tmp_path / "data", encryption=True,
    )
    config.write_text(config.read_text().replace('password = ""', f"access_token = {json.dumps(account.access_token)}"))
    bot = await asyncio.to_thread(BotProcess(config, tmp_path / "rpbot.log").start)
    await asyncio.to_thread(bot.stop)
    keys = await account_keys(synapse, account.user_id, account.access_token)
    assert keys.device_signed(account.device_id), bot.log_text()[-2000:]


async def test_an_operator_with_only_an_access_token_is_told_what_to_do_and_nothing_is_half_done(synapse: SynapseServer, tmp_path: Path) -> None:
    config, bot_id, password = bot_config(synapse, tmp_path)
    bot = BotProcess(config, tmp_path / "rpbot.log")
    await asyncio.to_thread(bot.start)
    await asyncio.to_thread(bot.stop)
    data_dir = tmp_path / "data"
    token = session(data_dir)["access_token"]
    before = await account_keys(synapse, bot_id, token)
    (data_dir / "crypto" / KEYS_FILE).unlink()
    config.write_text(config.read_text().replace(f"password = {json.dumps(password)}", f"access_token = {json.dumps(token)}"))
    await asyncio.to_thread(bot.start)  # it still starts: plain clients and unencrypted rooms work
    await asyncio.to_thread(bot.stop)
    assert "set matrix.password (RPBOT_MATRIX__PASSWORD)" in bot.log_text()
    after = await account_keys(synapse, bot_id, token)
    assert after.public("master") == before.public("master") and not (data_dir / "crypto" / KEYS_FILE).exists()


async def e2ee_device(synapse: SynapseServer, user_id: str, password: str, store: Path) -> AsyncClient:
    await asyncio.to_thread(store.mkdir, parents=True)
    client = AsyncClient(synapse.url, user_id, store_path=str(store), config=AsyncClientConfig(encryption_enabled=True))
    await client.login(password)
    await client.keys_upload()
    await client.sync(timeout=0, full_state=True)
    return client


async def test_the_bot_shares_its_room_keys_with_a_cross_signed_players_signed_devices_only(synapse: SynapseServer, tmp_path: Path) -> None:
    config, bot_id, _ = bot_config(synapse, tmp_path)
    bot = await asyncio.to_thread(BotProcess(config, tmp_path / "rpbot.log").start)
    player = synapse.register("player")
    signed = await e2ee_device(synapse, player.user_id, player.password, tmp_path / "signed")
    unsigned = await e2ee_device(synapse, player.user_id, player.password, tmp_path / "unsigned")
    async with httpx.AsyncClient(base_url=synapse.url, headers={"Authorization": f"Bearer {signed.access_token}"}) as http:
        keys = CrossSigningKeys.generate()
        await upload_keys(http, player.user_id, keys, player.password)
        account = await AccountKeys(http, player.user_id).refresh()
        await sign_device(http, player.user_id, account.device(signed.device_id), keys)
    seen: dict[str, list] = {"signed": [], "unsigned": []}
    for name, client in (("signed", signed), ("unsigned", unsigned)):
        # Only the encrypted rooms (the Space's lobby and story room) tell; the invite room is the player's, unencrypted.
        client.add_event_callback(lambda room, event, name=name: room.encrypted and seen[name].append(event), (RoomMessageText, MegolmEvent))
    try:
        await signed.room_create(invite=[bot_id], is_direct=True)
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:  # the welcome and the greeting come from the bot
            if len([e for e in seen["signed"] if e.sender == bot_id]) and len([e for e in seen["unsigned"] if e.sender == bot_id]):
                break
            for client in (signed, unsigned):
                await client.sync(timeout=300)
                children = {child for room in client.rooms.values() for child in room.children}
                for room_id in {*client.invited_rooms, *children} - set(client.rooms):
                    await client.join(room_id)
                if client.should_query_keys:
                    await client.keys_query()
        from_bot = {name: [e for e in events if e.sender == bot_id] for name, events in seen.items()}
        assert from_bot["signed"] and all(isinstance(e, RoomMessageText) for e in from_bot["signed"]), from_bot
        assert from_bot["unsigned"] and all(isinstance(e, MegolmEvent) for e in from_bot["unsigned"]), from_bot
    finally:
        await signed.close()
        await unsigned.close()
        await asyncio.to_thread(bot.stop)
    assert f"not sharing room keys with {player.user_id}'s device {unsigned.device_id}" in bot.log_text()
