"""Language-model faults during a turn: a short notice, `!regen` retries the turn, state stays whole.

Faults tried, each on its own line in one story room: the endpoint down (connection refused),
a hang past `timeout_s`, HTTP 500 on every retry, 429 on every retry, a stream cut mid-reply,
a stream with a garbage (non-JSON) line; then transient faults the client's retries absorb
(429 twice, a slow first token). After each failure `!regen` answers the failed line, in a
new message (or the partial one), never over an earlier reply.
"""

from __future__ import annotations

import time

import pytest

from adapter.devserver import free_port
from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.reliability.support import WatchingPlayer, openai_llm, replay_matches
from tests.support.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.synapse

NOTICE = "did not answer"


def bot_texts(player: WatchingPlayer, room: str, bot: RunningBot) -> list[str]:
    return list(player.final_texts(room, bot.user_id).values())


def wait_for_echo(player: WatchingPlayer, room: str, bot: RunningBot, line: str, timeout_s: float = 45) -> None:
    player.wait_for(
        lambda: any(t.endswith(f"Echo: {line}") for t in bot_texts(player, room, bot)), timeout_s=timeout_s, what=f"the reply to {line!r}"
    )


def notices(player: WatchingPlayer, room: str, bot: RunningBot) -> int:
    return sum(NOTICE in t for t in bot_texts(player, room, bot))


@pytest.mark.timeout(240)
def test_each_model_fault_gives_a_notice_and_regen_answers_the_line(start_bot, tmp_path) -> None:
    port = free_port()
    fake = FakeOpenAIServer(port=port).start()
    bot = start_bot(llm=openai_llm(fake, timeout_s=3))
    player = WatchingPlayer(bot.server.url, bot.server.register("player"))
    _, _, story = onboard(bot, player)
    answered = ["before any fault"]
    player.send_text(story, answered[0])
    wait_for_echo(player, story, bot, answered[0])

    faults = {
        "down": None,
        "hang": Reply(hang=True, fail_times=1),
        "http-500": Reply(status=500, fail_times=4),
        "http-429": Reply(status=429, retry_after=0.2, fail_times=4),
        "cut-stream": Reply(truncate=True, chunk_size=4, fail_after_chunks=2, fail_times=1),
        "garbage-json": Reply(malformed_line=True, fail_after_chunks=1, fail_times=1),
    }
    try:
        for tag, reply in faults.items():
            line = f"{tag} line"
            if reply is None:
                fake.stop()
            else:
                fake.add_rule(reply, purpose="narrate", user_contains=line)
            seen = notices(player, story, bot)
            player.send_text(story, line)
            player.wait_for(lambda seen=seen: notices(player, story, bot) > seen, timeout_s=45, what=f"a notice after {tag}")
            if reply is None:
                fake = FakeOpenAIServer(port=port).start()
            player.send_text(story, "!regen")
            wait_for_echo(player, story, bot, line)
            answered.append(line)
            texts = bot_texts(player, story, bot)
            for earlier in answered:  # nothing shown before was overwritten
                assert sum(t.endswith(f"Echo: {earlier}") for t in texts) == 1, (earlier, texts)

        fake.add_rule(Reply(status=429, retry_after=0.3, fail_times=2), purpose="narrate", user_contains="transient")
        fake.add_rule(Reply(first_token_delay_s=2), purpose="narrate", user_contains="slow")
        seen = notices(player, story, bot)
        for line in ("transient 429 line", "slow line"):
            player.send_text(story, line)
            wait_for_echo(player, story, bot, line)
            answered.append(line)
        assert notices(player, story, bot) == seen  # absorbed by retries and patience: no notice
    finally:
        fake.stop()
    time.sleep(1)
    player.sync_once()
    texts = bot_texts(player, story, bot)
    for line in answered:
        assert sum(t.endswith(f"Echo: {line}") for t in texts) == 1, (line, texts)
    assert bot.process.stop() == 0
    equal, _ = replay_matches(tmp_path / "data" / "engine.sqlite3")
    assert equal
    assert "Traceback" not in bot.process.log_text()
