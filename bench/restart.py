"""Restart cost: how long from login to ready with many players, against the bare full-state sync.

Builds USERS players x ROOMS rooms (a Space, a Lobby and story rooms, each with the
identity state the bot writes) on a throwaway local Synapse with relaxed limits,
through the bot's own account, then starts the real MatrixBot three times:
with an empty cache (full rebuild), and twice with a healthy cache. Reports the
time of each startup phase, the time of a bare full-state sync done alone, and the
HTTP requests reconciliation made. Last, the real `rpbot run` process (default
config: E2EE on, INFO logs) starts on the same data and its resident memory is read
once it is ready with every room bound, and again after a minute idle. Not a test:
run it by hand.

    .venv/bin/python bench/restart.py --users 100 --rooms 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from nio import AsyncClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapter.config import Config, LLMConfig, MatrixConfig, StorageConfig
from adapter.matrix import bot as bot_module
from adapter.matrix.bot import MatrixBot, catch_up_filter
from adapter.matrix.spaces import ROOM_STATE, SPACE_STATE
from bench.measure import machine, memory_mb, throwaway_homeserver
from core.engine import Engine
from core.llm import make_llm_client
from tests.support.bot_process import BotProcess, write_config


async def build_topology(url: str, bot_id: str, token: str, device: str, users: int, rooms: int) -> None:
    client = AsyncClient(url, bot_id)
    client.restore_login(bot_id, device, token)
    semaphore = asyncio.Semaphore(8)

    async def one_user(index: int) -> None:
        owner = f"@bench-player-{index}:localhost"
        async with semaphore:
            space = (await client.room_create(space=True, name=f"Stories of {index}", initial_state=[
                {"type": SPACE_STATE, "state_key": "", "content": {"owner": owner, "version": 1}}])).room_id
            for number in range(rooms):
                room_type = "lobby" if number == 0 else "chat"
                identity = {"owner": owner, "room_type": room_type, "space_id": space, "version": 1,
                            "chat_id": None if room_type == "lobby" else f"chat-{index}-{number}",
                            "platform_chat_id": None if room_type == "lobby" else f"mx-{index * rooms + number}"}
                room = (await client.room_create(name="Lobby" if number == 0 else f"Story {number}", initial_state=[
                    {"type": ROOM_STATE, "state_key": "", "content": identity},
                    {"type": "m.space.parent", "state_key": space, "content": {"canonical": True, "via": ["localhost"]}}])).room_id
                await client.room_put_state(space, "m.space.child", {"via": ["localhost"]}, state_key=room)

    started = time.monotonic()
    await asyncio.gather(*(one_user(i) for i in range(users)))
    print(f"built {users} users x {rooms} rooms in {time.monotonic() - started:.0f}s", flush=True)
    await client.close()


class RequestCounter:
    """Counts nio HTTP requests by path while enabled."""

    def __init__(self) -> None:
        self.enabled = False
        self.paths: list[str] = []
        original = AsyncClient._send

        async def counting(client, response_class, method, path, *args, **kwargs):
            if self.enabled:
                self.paths.append(f"{method} {path.split('?')[0]}")
            return await original(client, response_class, method, path, *args, **kwargs)

        AsyncClient._send = counting  # type: ignore[method-assign]


async def timed_start(config: Config, counter: RequestCounter) -> dict[str, float | int]:
    Path(config.storage.data_dir).mkdir(parents=True, exist_ok=True)
    engine = await Engine.open(Path(config.storage.data_dir) / "engine.sqlite3", make_llm_client("demo"))
    bot = MatrixBot(config, engine)
    phases: dict[str, float | int] = {}
    original_sync, original_reconcile = bot_module.full_state_sync, bot_module.reconcile_from_space_topology

    async def full_state_sync(client):
        t = time.monotonic()
        result = await original_sync(client)
        phases["full_state_sync_s"] = time.monotonic() - t
        return result

    async def reconcile(ctx, response):
        counter.paths.clear()
        counter.enabled = True
        t = time.monotonic()
        report = await original_reconcile(ctx, response)
        phases["reconcile_s"] = time.monotonic() - t
        counter.enabled = False
        phases["reconcile_requests"] = len(counter.paths)
        phases["rooms_restored"] = report.rooms_restored
        return report

    bot_module.full_state_sync, bot_module.reconcile_from_space_topology = full_state_sync, reconcile
    try:
        t = time.monotonic()
        await bot.start()
        phases["login_to_ready_s"] = time.monotonic() - t
        phases["rss_mb"] = memory_mb()
    finally:
        bot_module.full_state_sync, bot_module.reconcile_from_space_topology = original_sync, original_reconcile
        await bot.close()
        await engine.close()
    return phases


def real_process_rss(url: str, account, data: Path, work: Path, idle_s: float) -> dict[str, float]:
    """Start `rpbot run` on the built data (E2EE on, as configured by default); its RSS when ready and after idling."""
    config = write_config(work / "rpbot.toml", homeserver=url, user_id=account.user_id, password=account.password,
                          allowed_users=["@bench-*:localhost"], data_dir=data, encryption=True)
    process = BotProcess(config, work / "rpbot.log", log_level="INFO").start(timeout_s=300)
    try:
        pid = process.process.pid
        figures = {"ready_rss_mb": memory_mb(pid), "ready_peak_mb": memory_mb(pid, "VmHWM")}
        time.sleep(idle_s)
        figures.update(idle_rss_mb=memory_mb(pid), idle_peak_mb=memory_mb(pid, "VmHWM"))
        return figures
    finally:
        process.stop()


async def bare_sync(url: str, bot_id: str, token: str, device: str) -> float:
    client = AsyncClient(url, bot_id)
    client.restore_login(bot_id, device, token)
    t = time.monotonic()
    await client.sync(timeout=0, full_state=True, sync_filter=catch_up_filter())
    elapsed = time.monotonic() - t
    await client.close()
    return elapsed


async def main(users: int, rooms: int) -> None:
    counter = RequestCounter()
    with throwaway_homeserver("rpbot-restart-") as (work, server):
        account = server.register("rpbot")
        await build_topology(server.url, account.user_id, account.access_token, account.device_id, users, rooms)
        data = work / "data"
        config = Config(
            matrix=MatrixConfig(homeserver=server.url, user_id=account.user_id, password=account.password,
                                allowed_users=["@bench-*:localhost"], encryption=False),
            storage=StorageConfig(data_dir=data),
            llm=LLMConfig(provider="demo"),
        )
        runs = {"empty cache": await timed_start(config, counter)}
        runs["healthy cache"] = await timed_start(config, counter)
        runs["healthy cache (again)"] = await timed_start(config, counter)
        bare = [await bare_sync(server.url, account.user_id, account.access_token, account.device_id) for _ in range(3)]
        real = real_process_rss(server.url, account, data, work, idle_s=60)
    print(f"\nmachine: {machine()}")
    print(f"{users} users x ({rooms} rooms + a Space) = {users * (rooms + 1)} rooms")
    print(f"bare full-state sync alone: median {statistics.median(bare):.2f}s (runs: {', '.join(f'{b:.2f}' for b in bare)})")
    for name, phases in runs.items():
        overhead = phases["reconcile_s"] / phases["full_state_sync_s"] * 100
        print(f"{name}: login->ready {phases['login_to_ready_s']:.2f}s, full-state sync {phases['full_state_sync_s']:.2f}s, "
              f"reconcile {phases['reconcile_s']:.3f}s ({overhead:.1f}% of the sync), "
              f"reconcile HTTP requests {phases['reconcile_requests']}, rooms restored {phases['rooms_restored']}, "
              f"RSS when ready {phases['rss_mb']:.0f} MB (in-process, the bench's own objects included)")
    print(f"`rpbot run` with {users * (rooms + 1)} rooms bound: RSS when ready {real['ready_rss_mb']:.1f} MB "
          f"(peak {real['ready_peak_mb']:.1f} MB), after 60 s idle {real['idle_rss_mb']:.1f} MB (peak {real['idle_peak_mb']:.1f} MB)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=10, help="rooms per user, Space excluded (a Lobby and stories)")
    args = parser.parse_args()
    asyncio.run(main(args.users, args.rooms))
