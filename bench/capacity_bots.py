"""The bots of the capacity benchmark: the database, N `rpbot run` processes on it, the players onboarded.

Each bot is its own account (exempted from rate limiting through Synapse's admin API), its own
process, data_dir and config; all name the same `database_url` ("" : SQLite files in each
data_dir). Players are split evenly across the bots, each onboarded with one of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapter.devserver import RegisteredUser
from bench.capacity_players import BenchPlayer
from bench.measure import postgres_version, throwaway_postgres
from tests.adapter.matrix.conftest import RunningBot
from tests.reliability.load import onboard_player
from tests.support.bot_process import BotProcess, write_config
from tests.support.synapse import SynapseServer


@dataclass(frozen=True)
class BenchDatabase:
    """Where the bots keep their stories: the URL they are given, a description, and the PID of the
    database server's process tree (None for SQLite, which runs inside each bot)."""

    url: str
    description: str
    server_pid: int | None


@contextmanager
def bench_database(kind: str) -> Iterator[BenchDatabase]:
    """SQLite files in each bot's data_dir, or one database on a throwaway PostgreSQL server on its
    stock settings (durable commits included), removed after."""
    if kind == "sqlite":
        yield BenchDatabase("", "SQLite files in each bot's data_dir", None)
        return
    with throwaway_postgres() as server:
        name = server.create_database(prefix="rpbot")
        assert server.process is not None
        yield BenchDatabase(server.url(name), f"{postgres_version(server)}, stock settings, one database for every bot: "
                            f"{server.url(name)}", server.process.pid)


def exempt_from_rate_limits(url: str, admin: RegisteredUser, user_id: str) -> None:
    response = httpx.post(f"{url}/_synapse/admin/v1/users/{user_id}/override_ratelimit",
                          headers={"Authorization": f"Bearer {admin.access_token}"},
                          json={"messages_per_second": 0, "burst_count": 0}, timeout=30)
    response.raise_for_status()


@contextmanager
def running_bots(server: SynapseServer, work: Path, count: int, database_url: str, llm: dict,
                 env: dict[str, str]) -> Iterator[list[RunningBot]]:
    """`count` bot processes, each its own account, data_dir and config in work/bot-K; stopped after."""
    bots: list[RunningBot] = []
    try:
        for number in range(1, count + 1):
            account = server.register("rpbot")
            exempt_from_rate_limits(server.url, server.admin, account.user_id)
            home = work / f"bot-{number}"
            home.mkdir()
            config = write_config(home / "rpbot.toml", homeserver=server.url, user_id=account.user_id,
                                  password=account.password, allowed_users=["@player-*:localhost"], data_dir=home / "data",
                                  llm=llm, database_url=database_url)
            process = BotProcess(config, home / "rpbot.log", log_level="INFO", env=env).start()
            bots.append(RunningBot(process, account.user_id, server, database_url))
        yield bots
    finally:
        for bot in bots:
            bot.process.stop()


def onboard_all(bots: list[RunningBot], server: SynapseServer, players: int, rooms: int) -> list[BenchPlayer]:
    """`players` new players with `rooms` story rooms each; player K with bot K mod len(bots), so that
    the first N players (those of a step) are split evenly across the bots too."""
    started = time.monotonic()
    done = 0
    lock = threading.Lock()

    def one(index: int) -> BenchPlayer:
        nonlocal done
        bot = bots[index % len(bots)]
        player, stories = onboard_player(bot, server, rooms)
        player.close()
        with lock:
            done += 1
            if done % 10 == 0:
                print(f"  onboarded {done}/{players} players ({time.monotonic() - started:.0f}s)", flush=True)
        return BenchPlayer(player.account, stories, bot.user_id)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(one, range(players)))
