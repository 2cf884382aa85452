"""Every player action gets a visible answer: a random sequence against the real bot on real Synapse.

One player, a story room and the Lobby. A seeded random sequence of a few dozen actions:
story lines (some of which the model fails to answer), commands that are valid, invalid or
out of place, and 🔄 / ⏹ reactions on the newest or an older message, in both rooms. After
each action the bot must send something new in that room (a message, or an edit of one)
within a bound, and at the end its log holds no traceback.
"""

from __future__ import annotations

import random
import time

import pytest

from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.reliability.support import WatchingPlayer, openai_llm
from tests.support.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.synapse

SEED = 15
ACTIONS = 36
ANSWER_BOUND_S = 45.0
QUIET_S = 1.5  # the bot has finished answering when it has sent nothing more for this long

STORY_ACTIONS = [
    "line", "line", "line", "failing line", "!help", "!status", "!threads", "!skip 1h", "!skip banana",
    "!jump whenever-ish", "!scene close", "!regen", "!new wren", "!characters", "!bogus", "!memory",
    "react 🔄 newest", "react 🔄 oldest", "react ⏹ newest",
]
LOBBY_ACTIONS = ["lobby line", "!help", "!characters", "!skip 1h", "!regen", "!bogus", "react 🔄 newest"]


def bot_events(player: WatchingPlayer, room: str, bot: RunningBot) -> list[dict]:
    return player.messages_from(room, bot.user_id)


def newest_and_oldest(player: WatchingPlayer, room: str, bot: RunningBot) -> tuple[str, str]:
    shown = [e["event_id"] for e in bot_events(player, room, bot)
             if e.get("content", {}).get("m.relates_to", {}).get("rel_type") != "m.replace"]
    return shown[-1], shown[0]


def act(player: WatchingPlayer, room: str, bot: RunningBot, action: str, step: int) -> None:
    if action.startswith("react "):
        _, key, which = action.split(" ")
        newest, oldest = newest_and_oldest(player, room, bot)
        player.react(room, newest if which == "newest" else oldest, key)
    elif action == "line":
        player.send_text(room, f"Step {step}: the tide turns and I look at the lamp.")
    elif action == "failing line":
        player.send_text(room, f"Step {step}: fail-me, please.")
    elif action == "lobby line":
        player.send_text(room, f"Step {step}: hello, is anyone there?")
    else:
        player.send_text(room, action)


def wait_for_answer(player: WatchingPlayer, room: str, bot: RunningBot, before: int, what: str) -> float:
    """Seconds until the bot sent something new in `room`; then wait until it goes quiet."""
    started = time.monotonic()
    player.wait_for(lambda: len(bot_events(player, room, bot)) > before, timeout_s=ANSWER_BOUND_S, what=what)
    answered = time.monotonic() - started
    seen, quiet_since = len(bot_events(player, room, bot)), time.monotonic()
    while time.monotonic() - quiet_since < QUIET_S:
        player.sync_once(timeout_ms=300)
        if len(bot_events(player, room, bot)) != seen:
            seen, quiet_since = len(bot_events(player, room, bot)), time.monotonic()
    return answered


@pytest.mark.timeout(600)
def test_every_action_in_a_random_sequence_gets_a_visible_answer(start_bot) -> None:
    fake = FakeOpenAIServer().start()
    try:
        fake.add_rule(Reply(status=500, fail_times=10_000), purpose="narrate", user_contains="fail-me")
        bot = start_bot(llm=openai_llm(fake, timeout_s=5))
        player = WatchingPlayer(bot.server.url, bot.server.register("player"))
        _, lobby, story = onboard(bot, player)
        wait_for_answer(player, story, bot, 0, "the greeting")
        act(player, lobby, bot, "!help", 0)  # so the Lobby has a message of the bot's to react to
        wait_for_answer(player, lobby, bot, len(bot_events(player, lobby, bot)), "the help in the Lobby")

        chance = random.Random(SEED)
        slowest: tuple[float, str] = (0.0, "")
        for step in range(1, ACTIONS + 1):
            room, actions = (lobby, LOBBY_ACTIONS) if chance.random() < 0.3 else (story, STORY_ACTIONS)
            action = chance.choice(actions)
            where = "Lobby" if room == lobby else "story room"
            before = len(bot_events(player, room, bot))
            act(player, room, bot, action, step)
            seconds = wait_for_answer(player, room, bot, before, f"an answer to {action!r} in the {where} (step {step}, seed {SEED})")
            slowest = max(slowest, (seconds, f"{action} in the {where}"))
        print(f"slowest answer: {slowest[0]:.1f}s ({slowest[1]})")

        log = bot.process.log_text()
        assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]
    finally:
        fake.stop()
