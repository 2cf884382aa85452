"""The crash-loop scenario, shared by its short test and `bench/crash_loop.py` (the long run).

A scripted player talks in three story rooms while the bot is killed with SIGKILL at random
moments and restarted; one kill lands just after a second player's invite (onboarding cut short).
Afterwards every line must have exactly one complete reply, no Space or room made twice, and the
engine's event log must replay into the projections the bot left.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.adapter.matrix.conftest import RunningBot, onboard, rooms_created_by
from tests.reliability.support import (
    WatchingPlayer,
    missing_or_duplicated,
    openai_llm,
    replay_matches,
    replies_by_line,
    tagged_reply,
)
from tests.support.bot_process import BotProcess, write_config
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer


@dataclass
class CrashLoopResult:
    kills: int
    lines_sent: int
    wrong_lines: dict[str, list[str]]
    rooms_created: int
    rooms_expected: int
    second_player_rooms: int
    replay_equal: bool
    events_replayed: int
    exit_code: int | None
    seconds: float
    restart_seconds: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.wrong_lines
            and self.rooms_created == self.rooms_expected
            and self.second_player_rooms == 3
            and self.replay_equal
            and self.exit_code == 0
        )


class LineSender(threading.Thread):
    """Sends `line-N` to the rooms in turn, at human-ish pace, until stopped."""

    def __init__(self, player: MatrixUser, rooms: list[str], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.player, self.rooms, self.rng = player, rooms, rng
        self.sent: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            tag = f"line-{len(self.sent)}"
            self.player.send_text(self.rooms[len(self.sent) % len(self.rooms)], f"I say {tag} to you.")
            self.sent.append(tag)
            self.halt.wait(self.rng.uniform(0.2, 0.9))


def run_crash_loop(server: SynapseServer, fake: FakeOpenAIServer, workdir: Path, *, kills: int, seed: int = 8) -> CrashLoopResult:
    started = time.monotonic()
    fake.add_rule(tagged_reply(chunk_delay_s=0.05), purpose="narrate")
    account = server.register("rpbot")
    config = write_config(
        workdir / "rpbot.toml", homeserver=server.url, user_id=account.user_id, password=account.password,
        allowed_users=["@player-*:localhost"], data_dir=workdir / "data", llm=openai_llm(fake),
    )
    process = BotProcess(config, workdir / "rpbot.log").start()
    try:
        return _crash_loop(RunningBot(process, account.user_id, server), workdir, kills=kills, rng=random.Random(seed), started=started)
    finally:
        process.kill()  # a run that failed half-way leaves no bot behind (one stopped cleanly is not running)


def _crash_loop(bot: RunningBot, workdir: Path, *, kills: int, rng: random.Random, started: float) -> CrashLoopResult:
    process, server = bot.process, bot.server
    player = WatchingPlayer(server.url, server.register("player"))
    space_id, lobby, _ = onboard(bot, player)
    player.send_text(lobby, "!new odile")
    player.send_text(lobby, "!new tamsin")
    hierarchy = player.wait_for(lambda: [h for h in [player.hierarchy(space_id)] if len(h) == 5], timeout_s=60, what="two more story rooms")[0]
    stories = [room["room_id"] for room in hierarchy if room["room_id"] not in (space_id, lobby)]
    for room in stories:
        player.join(room)

    sender = LineSender(MatrixUser(server.url, player.account), stories, rng)
    sender.start()
    newcomer = WatchingPlayer(server.url, server.register("player"))
    restart_seconds = []
    for kill in range(kills):
        if kill == 1:
            newcomer.create_room(invite=[bot.user_id])
            time.sleep(rng.uniform(0.1, 1.0))
        else:
            time.sleep(rng.uniform(0.3, 3.0))
        process.kill()
        time.sleep(rng.uniform(0.0, 0.5))
        before = time.monotonic()
        process.start()
        restart_seconds.append(time.monotonic() - before)
        player.sync_once(timeout_ms=0)  # often: Synapse caps a sync's timeline at 100 events a room
    time.sleep(1)
    sender.halt.set()
    sender.join()

    def settled() -> bool:
        return not missing_or_duplicated(sender.sent, replies_by_line(player, stories, bot.user_id))

    try:
        player.wait_for(settled, timeout_s=60 + 2 * len(sender.sent), what="one complete reply per line")
    except AssertionError:
        pass
    time.sleep(2)
    player.sync_once()
    wrong = missing_or_duplicated(sender.sent, replies_by_line(player, stories, bot.user_id))

    second_rooms = 0
    if kills > 1:
        newcomer_space = newcomer.wait_for_invite(room_type="m.space", timeout_s=60)
        newcomer.join(newcomer_space)
        try:
            newcomer_rooms = newcomer.wait_for(
                lambda: [h for h in [newcomer.hierarchy(newcomer_space)] if len(h) >= 3], timeout_s=30, what="a lobby and a story"
            )[0]
            second_rooms = len(newcomer_rooms)
        except AssertionError:
            second_rooms = len(newcomer.hierarchy(newcomer_space))
    created = len(rooms_created_by(server, bot.user_id))
    exit_code = process.stop()
    equal, events = replay_matches(workdir / "data" / "engine.sqlite3")
    return CrashLoopResult(
        kills=kills, lines_sent=len(sender.sent), wrong_lines=wrong, rooms_created=created,
        rooms_expected=5 + (3 if kills > 1 else 0), second_player_rooms=second_rooms if kills > 1 else 3,
        replay_equal=equal, events_replayed=events, exit_code=exit_code, seconds=time.monotonic() - started,
        restart_seconds=restart_seconds,
    )
