"""The load scenario, shared by its short test and `bench/load.py`: many players talking at once.

Each player is onboarded (a Space, a lobby, a first story) and opens more story rooms with `!new`;
then every player, in its own thread, sends one line to each of its rooms at once and waits for
every reply, for a number of rounds. A reply counts when its complete text (the end marker) is
seen; its latency runs from the send to then. The fake model has a realistic latency.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.reliability.support import (
    WatchingPlayer,
    missing_or_duplicated,
    openai_llm,
    replies_by_line,
    tagged_reply,
)
from tests.support.bot_process import BotProcess, write_config
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.synapse import SynapseServer


@dataclass
class LoadResult:
    users: int
    rooms_per_user: int
    rounds: int
    lines_sent: int = 0
    latencies_s: list[float] = field(default_factory=list)
    wrong_lines: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")

    def summary(self) -> dict:
        return {
            "users": self.users, "rooms_per_user": self.rooms_per_user, "rounds": self.rounds,
            "lines_sent": self.lines_sent, "replies_complete": len(self.latencies_s),
            "dropped_or_doubled": len(self.wrong_lines), "errors": self.errors[:5],
            "latency_p50_s": round(self.percentile(50), 2), "latency_p99_s": round(self.percentile(99), 2),
            "latency_max_s": round(max(self.latencies_s), 2) if self.latencies_s else None,
            "latency_mean_s": round(statistics.mean(self.latencies_s), 2) if self.latencies_s else None,
            "seconds": round(self.seconds, 1),
        }


def onboard_player(bot: RunningBot, server: SynapseServer, rooms: int) -> tuple[WatchingPlayer, list[str]]:
    """A new player, onboarded, with `rooms` story rooms joined (the first story and `!new` ones)."""
    player = WatchingPlayer(server.url, server.register("player"))
    space, lobby, story = onboard(bot, player, timeout_s=120)
    for _ in range(rooms - 1):
        player.send_text(lobby, "!new odile")
    hierarchy = player.wait_for(lambda: [h for h in [player.hierarchy(space)] if len(h) == rooms + 2], timeout_s=120, what="the story rooms")[0]
    stories = [room["room_id"] for room in hierarchy if room["room_id"] not in (space, lobby)]
    for room in stories:
        if room != story:
            player.join(room)
    return player, stories


def _onboard_into(bot: RunningBot, server: SynapseServer, rooms: int, out: list, index: int) -> None:
    out[index] = onboard_player(bot, server, rooms)


def _talk(player: WatchingPlayer, stories: list[str], bot_id: str, user_index: int, rounds: int, result: LoadResult, lock: threading.Lock) -> None:
    for round_index in range(rounds):
        sent_at = {}
        for room_index, room in enumerate(stories):
            tag = f"line-{user_index}-{room_index}-{round_index}"
            player.send_text(room, f"I say {tag} to you.")
            sent_at[tag] = time.monotonic()
        deadline = time.monotonic() + 120
        waiting = dict(sent_at)
        while waiting and time.monotonic() < deadline:
            player.sync_once(timeout_ms=1000)
            found = replies_by_line(player, stories, bot_id)
            for tag in list(waiting):
                if any(text.endswith(f"[end {tag}]") for text in found.get(tag, [])):
                    with lock:
                        result.latencies_s.append(time.monotonic() - waiting.pop(tag))
        with lock:
            result.lines_sent += len(sent_at)
            if waiting:
                result.errors.append(f"no reply within 120 s to {sorted(waiting)}")


def run_load(server: SynapseServer, fake: FakeOpenAIServer, workdir: Path, *, users: int, rooms_per_user: int, rounds: int,
             first_token_delay_s: float = 0.8, chunk_delay_s: float = 0.05) -> LoadResult:
    fake.add_rule(tagged_reply(chunk_delay_s=chunk_delay_s, first_token_delay_s=first_token_delay_s), purpose="narrate")
    account = server.register("rpbot")
    config = write_config(workdir / "rpbot.toml", homeserver=server.url, user_id=account.user_id, password=account.password,
                          allowed_users=["@player-*:localhost"], data_dir=workdir / "data", llm=openai_llm(fake, timeout_s=60))
    process = BotProcess(config, workdir / "rpbot.log").start()
    bot = RunningBot(process, account.user_id, server)
    result = LoadResult(users, rooms_per_user, rounds)
    try:
        players: list = [None] * users
        threads = [threading.Thread(target=_onboard_into, args=(bot, server, rooms_per_user, players, i)) for i in range(users)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(p is None for p in players):
            result.errors.append("an onboarding failed")
            return result
        lock = threading.Lock()
        started = time.monotonic()
        talkers = [threading.Thread(target=_talk, args=(p, rooms, bot.user_id, i, rounds, result, lock)) for i, (p, rooms) in enumerate(players)]
        for thread in talkers:
            thread.start()
        for thread in talkers:
            thread.join()
        result.seconds = time.monotonic() - started
        time.sleep(2)
        for index, (player, rooms) in enumerate(players):
            player.sync_once()
            sent = [f"line-{index}-{r}-{k}" for r in range(len(rooms)) for k in range(rounds)]
            result.wrong_lines.update(missing_or_duplicated(sent, replies_by_line(player, rooms, bot.user_id)))
        if process.stop() != 0:
            result.errors.append("the bot did not stop cleanly")
    finally:
        process.kill()
    return result
