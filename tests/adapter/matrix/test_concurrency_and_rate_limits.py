"""Rooms never wait for each other: a slow model in one story, or the homeserver's rate limits."""

from __future__ import annotations

import threading
import time

import pytest

from tests.adapter.matrix.conftest import onboard
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.matrix_user import MatrixUser

pytestmark = pytest.mark.synapse

SLOW_FIRST_TOKEN_S = 3.0


def time_to_reply(player: MatrixUser, room: str, bot_id: str, line: str, needle: str, results: dict[str, float]) -> None:
    started = time.monotonic()
    player.send_text(room, line)
    player.wait_for(lambda: any(needle in t for t in player.final_texts(room, bot_id).values()), timeout_s=60, what="the reply")
    results[player.user_id] = time.monotonic() - started


def test_two_players_with_a_slow_model_do_not_wait_for_each_other(start_bot, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add_rule(Reply(text="The answer, slowly.", first_token_delay_s=SLOW_FIRST_TOKEN_S), purpose="narrate")
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30})
    players = [bot.player(), bot.player()]
    stories = [onboard(bot, p)[2] for p in players]

    results: dict[str, float] = {}
    threads = [
        threading.Thread(target=time_to_reply, args=(p, room, bot.user_id, "Tell me a story.", "The answer, slowly.", results))
        for p, room in zip(players, stories, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Serialised, the second would wait for the first: about 2 x 3 s. Concurrent: both about 3 s.
    assert len(results) == 2
    assert max(results.values()) < 2 * SLOW_FIRST_TOKEN_S - 0.5, results


@pytest.mark.timeout(300)
def test_stock_rate_limits_two_onboardings_at_once_and_a_story_still_answered(start_bot_default_limits) -> None:
    bot = start_bot_default_limits()
    talker = bot.player()
    _, _, story = onboard(bot, talker, timeout_s=120)
    newcomers = [bot.player(), bot.player()]
    outcomes: dict[str, tuple[str, str, str]] = {}

    def onboard_one(player: MatrixUser) -> None:
        outcomes[player.user_id] = onboard(bot, player, timeout_s=180)

    threads = [threading.Thread(target=onboard_one, args=(p,)) for p in newcomers]
    for thread in threads:
        thread.start()
    talker.send_text(story, "Meanwhile, in my story: hello?")
    talker.wait_for(lambda: len(talker.final_texts(story, bot.user_id)) >= 2, timeout_s=180, what="an answer while others onboard")
    for thread in threads:
        thread.join()

    assert set(outcomes) == {p.user_id for p in newcomers}
    for player in newcomers:
        _, _, their_story = outcomes[player.user_id]
        player.wait_for(
            lambda player=player, their_story=their_story: player.final_texts(their_story, bot.user_id), timeout_s=120, what="the greeting"
        )
    spaces = [room for room in bot.rooms_created() if room.get("room_type") == "m.space"]
    assert len(spaces) == 3
    assert "rate limited" in bot.process.log_text()  # the limits really were hit, and waited out
