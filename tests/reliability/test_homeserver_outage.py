"""The homeserver goes away for 30 s while the bot runs: it waits with backoff and carries on.

A private Synapse (not the shared fixture) is stopped and started again on the same port and
data. The bot must not crash nor hammer the dead port (its sync attempts are counted in its
log), and must answer a line the player sent before the bot noticed the homeserver was back.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from adapter.devserver import LocalHomeserver
from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.reliability.support import WatchingPlayer, openai_llm
from tests.support.bot_process import BotProcess, write_config
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse

OUTAGE_S = 30
SYNC_FAILED = "sync failed"


def answered(player: WatchingPlayer, room: str, bot_id: str, line: str) -> bool:
    return any(t.endswith(f"Echo: {line}") for t in player.final_texts(room, bot_id).values())


@pytest.mark.timeout(240)
def test_a_30_second_outage_is_waited_out_with_backoff(fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    homeserver = LocalHomeserver(tmp_path / "synapse", relaxed_rate_limits=True)
    homeserver.start()
    process: BotProcess | None = None
    try:
        server = SynapseServer(homeserver)
        account = server.register("rpbot")
        config = write_config(tmp_path / "rpbot.toml", homeserver=server.url, user_id=account.user_id, password=account.password,
                              allowed_users=["@player-*:localhost"], data_dir=tmp_path / "data", llm=openai_llm(fake_openai))
        process = BotProcess(config, tmp_path / "rpbot.log").start()
        bot = RunningBot(process, account.user_id, server)
        player = WatchingPlayer(server.url, server.register("player"))
        _, _, story = onboard(bot, player)
        player.send_text(story, "before the outage")
        player.wait_for(lambda: answered(player, story, bot.user_id, "before the outage"), what="a reply before the outage")

        failures_before = process.log_text().count(SYNC_FAILED)
        homeserver.stop()
        time.sleep(OUTAGE_S)
        attempts_during_outage = process.log_text().count(SYNC_FAILED) - failures_before
        homeserver.start()
        back_at = time.monotonic()
        player.send_text(story, "while the bot is still backing off")
        player.wait_for(
            lambda: answered(player, story, bot.user_id, "while the bot is still backing off"), timeout_s=90, what="the line sent after the outage"
        )
        recovered_s = time.monotonic() - back_at
        player.send_text(story, "after the recovery")
        player.wait_for(lambda: answered(player, story, bot.user_id, "after the recovery"), timeout_s=30, what="a later line")

        assert process.process is not None and process.process.poll() is None, "the bot crashed"
        assert 2 <= attempts_during_outage <= 12, f"{attempts_during_outage} sync attempts in {OUTAGE_S}s: no backoff?"
        assert recovered_s < 25, f"answered {recovered_s:.0f}s after the homeserver was back: backoff too long"
        texts = list(player.final_texts(story, bot.user_id).values())
        for line in ("before the outage", "while the bot is still backing off", "after the recovery"):
            assert sum(t.endswith(f"Echo: {line}") for t in texts) == 1, (line, texts)
        print(f"outage {OUTAGE_S}s: {attempts_during_outage} sync attempts; answered {recovered_s:.1f}s after the homeserver was back")
        assert process.stop() == 0
    finally:
        if process is not None:
            process.kill()
        homeserver.stop()
