"""Homeserver compatibility: stock Synapse, homeservers whose default room version is 10, 11 or 12, and a Space of two versions.

Each slice runs what breaks first when room versions differ: onboarding (the Space and its rooms
are made in the server's default version, with power levels right for it), a reply, `!new`,
forged identity and power state refused, and a restart with the cache deleted. docs/compatibility.md
lists what is covered here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adapter.devserver import LocalHomeserver
from tests.adapter.matrix.conftest import RunningBot, bot_starter, onboard
from tests.adapter.matrix.test_restart_persistence import openai_llm, say_and_wait
from tests.support.bot_process import BotProcess
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


def room_version(player: MatrixUser, room_id: str) -> str:
    return player.state_event(room_id, "m.room.create").get("room_version", "1")


def assert_power_fits_version(player: MatrixUser, room_id: str, bot_id: str) -> None:
    """Before 12 the bot is listed at 100; from 12 on it is the creator and must not be listed."""
    version = room_version(player, room_id)
    power = player.state_event(room_id, "m.room.power_levels")
    if int(version) >= 12:
        assert bot_id not in power["users"], (version, power)
    else:
        assert power["users"][bot_id] == 100, (version, power)
    assert power["users"][player.user_id] == 50
    assert power["events"]["org.rpbot.room"] == 100 and power["events"]["m.room.power_levels"] == 100


def assert_forgeries_refused(player: MatrixUser, space_id: str, rooms: list[str]) -> None:
    """The owner cannot write identity, topology or power state in any room the bot made."""
    forged = {"owner": player.user_id, "room_type": "chat", "chat_id": "someone-else", "version": 1}
    attempts: list[tuple[str, str, dict[str, Any], str]] = [(space_id, "org.rpbot.space", {"owner": player.user_id, "version": 1}, "")]
    attempts.append((space_id, "m.space.child", {"via": ["localhost"]}, "!forged:localhost"))
    for room in rooms:
        attempts.append((room, "org.rpbot.room", forged, ""))
        power = player.state_event(room, "m.room.power_levels")
        attempts.append((room, "m.room.power_levels", {**power, "users": {**power["users"], player.user_id: 100}}, ""))
    for room, kind, content, state_key in attempts:
        refused = player.send_state(room, kind, content, state_key)
        assert refused.status_code == 403 and refused.json()["errcode"] == "M_FORBIDDEN", (room, kind, refused.text)


def new_story(player: MatrixUser, bot: RunningBot, space_id: str, lobby: str, character: str) -> str:
    known = {room["room_id"] for room in player.hierarchy(space_id)}
    player.send_text(lobby, f"!new {character}")
    rooms = player.wait_for(
        lambda: [room for room in player.hierarchy(space_id) if room["room_id"] not in known], timeout_s=60, what="the new story room"
    )
    player.join(rooms[0]["room_id"])
    return rooms[0]["room_id"]


def restart_without_cache(bot: RunningBot) -> None:
    assert bot.process.stop() == 0
    bot.lose_cache()
    bot.process.start()


@pytest.fixture
def start_bot_on(tmp_path: Path, bot_database_url: str) -> Iterator[Callable[..., RunningBot]]:
    """Start the real bot against the homeserver given (the fixtures in conftest each have one fixed)."""
    started: list[BotProcess] = []
    yield lambda server, **options: bot_starter(server, tmp_path, started, bot_database_url)(**options)
    for process in started:
        assert process.stop() == 0, process.log_text()[-3000:]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_onboarding_reply_new_story_forgeries_and_restart(
    version: str, homeserver_with_default_room_version, start_bot_on, fake_openai: FakeOpenAIServer, tmp_path: Path
) -> None:
    server: SynapseServer = homeserver_with_default_room_version(version)
    bot = start_bot_on(server, llm=openai_llm(fake_openai))
    player = bot.player()
    space_id, lobby, story = onboard(bot, player)
    for room in (space_id, lobby, story):
        assert room_version(player, room) == version
    for room in (lobby, story):
        assert_power_fits_version(player, room, bot.user_id)
    assert_power_fits_version(player, space_id, bot.user_id)
    say_and_wait(player, story, bot, f"hello on version {version}", f"Echo: hello on version {version}")

    second = new_story(player, bot, space_id, lobby, "odile")
    assert room_version(player, second) == version
    assert_power_fits_version(player, second, bot.user_id)
    say_and_wait(player, second, bot, "and in the second story", "Echo: and in the second story")

    assert_forgeries_refused(player, space_id, [lobby, story, second])

    restart_without_cache(bot)
    assert "rooms_restored=4" in bot.process.log_text()
    say_and_wait(player, story, bot, "after the restart", "Echo: after the restart")
    say_and_wait(player, second, bot, "second after the restart", "Echo: second after the restart")
    assert len(bot.rooms_created()) == 4  # Space, Lobby, two stories: nothing made twice


def test_a_stock_generated_homeserver_onboards_a_player_and_answers(
    synapse_default_limits: SynapseServer, start_bot_default_limits, fake_openai: FakeOpenAIServer
) -> None:
    """Synapse's own `--generate-config`, with only the listener and log files changed: what a new operator runs."""
    server = synapse_default_limits.server
    generated = yaml.safe_load((server.data_dir / "homeserver.generated.yaml").read_text())
    running = yaml.safe_load(server.config_path.read_text())
    changed = {key for key in running.keys() | generated.keys() if running.get(key) != generated.get(key)}
    assert changed == {"listeners", "log_config"}, changed
    capabilities = httpx.get(
        f"{server.url}/_matrix/client/v3/capabilities", headers={"Authorization": f"Bearer {synapse_default_limits.admin.access_token}"}
    ).json()
    assert capabilities["capabilities"]["m.room_versions"]["default"] == "12"

    bot = start_bot_default_limits(llm=openai_llm(fake_openai))
    player = bot.player()
    space_id, lobby, story = onboard(bot, player)
    for room in (space_id, lobby, story):
        assert room_version(player, room) == "12"
    say_and_wait(player, story, bot, "hello, stock homeserver", "Echo: hello, stock homeserver")


@pytest.mark.timeout(240)
def test_a_space_of_two_room_versions_after_the_homeserver_moves_to_12(start_bot_on, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    """An old deployment keeps its version-10 rooms and adds version-12 ones; both work after a lost cache."""
    homeserver = LocalHomeserver(tmp_path / "synapse", settings={"default_room_version": "10"})
    homeserver.start()
    try:
        server = SynapseServer(homeserver)
        bot = start_bot_on(server, llm=openai_llm(fake_openai))
        player = bot.player()
        space_id, lobby, old_story = onboard(bot, player)
        assert room_version(player, old_story) == "10"
        say_and_wait(player, old_story, bot, "in the old room", "Echo: in the old room")

        assert bot.process.stop() == 0
        homeserver.stop()
        homeserver = LocalHomeserver(tmp_path / "synapse", port=homeserver.port)  # upgraded: the stock default again
        homeserver.start()
        bot.process.start()

        new = new_story(player, bot, space_id, lobby, "tamsin")
        assert room_version(player, space_id) == "10" and room_version(player, new) == "12"
        assert_power_fits_version(player, old_story, bot.user_id)
        assert_power_fits_version(player, new, bot.user_id)
        assert_forgeries_refused(player, space_id, [lobby, old_story, new])

        restart_without_cache(bot)
        assert "rooms_restored=4" in bot.process.log_text()
        say_and_wait(player, old_story, bot, "old room, cache gone", "Echo: old room, cache gone")
        say_and_wait(player, new, bot, "new room, cache gone", "Echo: new room, cache gone")
        assert len(bot.rooms_created()) == 4
    finally:
        homeserver.stop()
