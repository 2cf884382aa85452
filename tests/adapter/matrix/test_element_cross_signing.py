"""A player on Element's own crypto (matrix-js-sdk, Rust crypto, "exclude insecure devices") talks with the bot.

Element shares room keys only with devices their owner cross-signed and fails to decrypt
messages from other devices (`UNSIGNED_SENDER_DEVICE`). The bot cross-signs its device at
start. These tests show that such a player reads the greeting and the replies, decrypted,
with no warning shield, sent from the bot's current device; after a restart and after the
bot's session is lost (a new device) too; that the old mode (all devices allowed) works
with a bot that has no cross-signing, but the strict mode does not: the bot's messages fail
with `UNSIGNED_SENDER_DEVICE` and the key of the player's line never reaches the bot.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.matrix.cross_signing import KEYS_FILE, RECOVERY_KEY_FILE
from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.support.bot_process import BotProcess, write_config
from tests.support.element_js import ElementClient, SeenMessage, ensure_node_client
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse

UNSIGNED_SENDER_DEVICE = "UNSIGNED_SENDER_DEVICE"  # js-sdk's DecryptionFailureCode value


@pytest.fixture(scope="module", autouse=True)
def node_client() -> None:
    ensure_node_client()


class World:
    """The bot as a process, and a player with an Element client and a plain API handle for joining rooms."""

    def __init__(self, synapse: SynapseServer, tmp_path: Path) -> None:
        self.synapse = synapse
        self.tmp_path = tmp_path
        self.data_dir = tmp_path / "data"
        self.bot: BotProcess | None = None
        self.clients: list[ElementClient] = []
        self.elements: dict[str, ElementClient] = {}  # a player's user id -> their Element client
        self.users: list[MatrixUser] = []
        self.encryption = True

    def start_bot(self, *, cross_signing: bool = True, encryption: bool = True, llm: dict | None = None) -> BotProcess:
        account = self.synapse.register("rpbot")
        self.bot_account = account
        self.encryption = encryption
        self.bot_id = account.user_id
        config = write_config(
            self.tmp_path / "rpbot.toml",
            homeserver=self.synapse.url,
            user_id=account.user_id,
            password=account.password,
            allowed_users=["@player-*:localhost"],
            data_dir=self.data_dir,
            encryption=encryption,
            llm=llm,
        )
        if not cross_signing:
            config.write_text(config.read_text().replace("encryption = true", "encryption = true\ncross_signing = false"))
        self.bot = BotProcess(config, self.tmp_path / "rpbot.log").start()
        return self.bot

    def player(self, *, strict: bool = True) -> tuple[ElementClient, MatrixUser]:
        account = self.synapse.register("player")
        client = ElementClient(self.synapse.url, account, self.tmp_path / f"element-{account.localpart}.log", strict=strict)
        self.clients.append(client)
        self.elements[account.user_id] = client
        self.users.append(MatrixUser(self.synapse.url, account))
        return client, self.users[-1]

    def onboard(self, user: MatrixUser, timeout_s: float = 60) -> tuple[str, str, str]:
        """Invite the bot, join the Space it makes and its rooms; return (space, lobby, story).

        In an encrypted Space the story is opened once the player's Element has taken in the Lobby and,
        with it, the bot's devices, as a player reading the Lobby first. Else Element can decrypt the
        greeting before it has fetched them and fails it for good as from an unknown device: Element's
        own race (it never retries), which a loaded machine makes likely."""
        element = self.elements[user.user_id]

        def bot_devices_known() -> None:
            element.wait_for(lambda: self.bot_device() in element.devices_of(self.bot_id, download=False), timeout_s=timeout_s,
                             what="the bot's device in Element's device list, from the Lobby")

        return onboard(self.running(), user, timeout_s, after_lobby=bot_devices_known if self.encryption else None)

    def running(self) -> RunningBot:
        assert self.bot is not None
        return RunningBot(self.bot, self.bot_id, self.synapse)

    def bot_device(self) -> str:
        return json.loads((self.data_dir / "session.json").read_text())["device_id"]

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for user in self.users:
            user.close()
        if self.bot is not None:
            self.bot.stop()


@pytest.fixture
def world(synapse: SynapseServer, tmp_path: Path) -> Iterator[World]:
    world = World(synapse, tmp_path)
    yield world
    world.close()


def talk(world: World, element: ElementClient, story: str, line: str) -> SeenMessage:
    """Send a line; return the bot's answer once Element shows it, sent from the bot's current device."""
    before = {m.event_id for m in element.seen}
    element.send_text(story, line)
    device = world.bot_device()
    return element.wait_for(
        lambda: next((m for m in element.shown(story, world.bot_id) if m.event_id not in before and m.sender_device == device), None),
        what=f"the bot's answer to {line!r}, from its device {device}",
    )


@pytest.mark.parametrize("strict", [True, False], ids=["signed-devices-only", "all-devices"])
def test_an_element_player_talks_with_the_bot_across_a_restart_and_a_new_device(world: World, strict: bool) -> None:
    """Element's default (only devices their owner signed) and its old mode (all devices alike)."""
    bot = world.start_bot()
    element, user = world.player(strict=strict)
    _, _, story = world.onboard(user)
    greeting = element.wait_for(lambda: [m for m in element.seen if m.room_id == story and m.sender == world.bot_id], what="the greeting")[0]
    assert (greeting.failure, greeting.sender_device, greeting.shield) == (None, world.bot_device(), "NONE"), greeting
    assert talk(world, element, story, "Is anyone here?").shield == "NONE"

    keys_file = world.data_dir / "crypto" / KEYS_FILE
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    saved_keys = keys_file.read_text()
    bot.stop()
    bot.start()
    assert keys_file.read_text() == saved_keys  # reused: a restart publishes nothing new
    assert talk(world, element, story, "Still there?").shield == "NONE"

    old_device = world.bot_device()
    bot.stop()
    (world.data_dir / "session.json").unlink()
    bot.start()
    assert world.bot_device() != old_device and keys_file.read_text() == saved_keys
    element.wait_for(lambda: world.bot_device() in element.devices_of(world.bot_id), what="the bot's new device in Element's device list")
    answer = talk(world, element, story, "And now?")
    assert answer.shield == "NONE", answer
    assert not element.failed(story, world.bot_id)
    assert bot.log_text().count("published cross-signing keys") == 1
    assert bot.log_text().count("cross-signed device") == 2  # the first device and the new one; a restart signs nothing
    assert "not cross-signed" not in bot.log_text()


def test_the_operator_opens_the_bots_account_in_element_with_the_recovery_key_and_sees_its_device_verified(world: World) -> None:
    world.start_bot()
    recovery_file = world.data_dir / RECOVERY_KEY_FILE
    recovery_key = next(line.strip() for line in recovery_file.read_text().splitlines() if line.startswith("    "))
    operator = world.synapse.server.login(world.bot_account.localpart, world.bot_account.password)  # a new session, as Element's sign-in
    element = ElementClient(world.synapse.url, operator, world.tmp_path / "element-operator.log", recovery_key=recovery_key)
    world.clients.append(element)
    assert element.ready["cross_signing_ready"]  # the keys came out of secret storage: no password, no new keys
    assert element.verifies(world.bot_id, world.bot_device())


def test_the_old_all_devices_mode_talks_with_a_bot_that_has_no_cross_signing(world: World) -> None:
    world.start_bot(cross_signing=False)
    element, user = world.player(strict=False)
    _, _, story = world.onboard(user)

    def decrypted_from_bot(after: set[str] = frozenset()) -> list[SeenMessage]:
        return [m for m in element.seen if m.room_id == story and m.sender == world.bot_id and m.failure is None and m.event_id not in after]

    greeting = element.wait_for(decrypted_from_bot, what="the greeting")
    element.send_text(story, "Is anyone here?")
    answer = element.wait_for(lambda: decrypted_from_bot({m.event_id for m in greeting}), what="the answer")[0]
    assert answer.body and (answer.shield, answer.shield_reason) == ("RED", "UNSIGNED_DEVICE")  # read, under a warning


def test_without_cross_signing_the_strict_mode_cannot_talk_with_the_bot(world: World) -> None:
    bot = world.start_bot(cross_signing=False)
    element, user = world.player()
    _, _, story = world.onboard(user)
    greeting = element.wait_for(lambda: element.failed(story, world.bot_id), what="the greeting")
    assert greeting[0].failure == UNSIGNED_SENDER_DEVICE
    from_bot_before = [m for m in element.seen if m.room_id == story and m.sender == world.bot_id]
    line = element.send_text(story, "Is anyone here?")
    bot.wait_for_log(f"waiting for the key of {line}", 30)  # the player's client withheld it from the unsigned device
    element.pump(8)  # the bot answers a line within a second or two when it can read it
    assert [m for m in element.seen if m.room_id == story and m.sender == world.bot_id] == from_bot_before
    assert not element.shown(story, world.bot_id)
