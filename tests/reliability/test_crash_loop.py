"""SIGKILL at random moments against real Synapse: nothing lost, nothing doubled, the log replays."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.reliability.scenarios import run_crash_loop
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


@pytest.mark.timeout(300)
def test_five_kills_leave_one_reply_per_line_and_one_space_per_player(synapse: SynapseServer, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    result = run_crash_loop(synapse, fake_openai, tmp_path, kills=5)
    assert result.lines_sent >= 10
    assert not result.wrong_lines, result.wrong_lines
    assert result.rooms_created == result.rooms_expected, result
    assert result.second_player_rooms == 3, "the onboarding cut short by a kill was completed"
    assert result.replay_equal, "replaying the event log gave different projections"
    assert result.exit_code == 0


def test_a_kill_during_onboarding_is_finished_after_the_restart(start_bot) -> None:
    bot = start_bot()
    newcomer = bot.player()
    newcomer.create_room(invite=[bot.user_id])
    bot.process.wait_for_log("created space", 30)
    bot.process.kill()  # the Space exists; its lobby and first story do not yet
    started = time.monotonic()
    bot.process.start()
    restart_s = time.monotonic() - started

    space = newcomer.wait_for_invite(room_type="m.space", timeout_s=30)
    newcomer.join(space)
    rooms = newcomer.wait_for(lambda: [h for h in [newcomer.hierarchy(space)] if len(h) == 3], timeout_s=30, what="a lobby and a story")[0]
    story = next(r["room_id"] for r in rooms if r["room_id"] != space and r.get("name") != "Lobby")
    newcomer.join(story)
    newcomer.wait_for(lambda: newcomer.messages_from(story, bot.user_id), timeout_s=30, what="the story's greeting")
    assert restart_s < 15, f"startup waited {restart_s:.0f}s on rooms the live sync had not shown yet"
    assert len(bot.rooms_created()) == 3
