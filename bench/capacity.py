"""Capacity: how many players one rpbot process carries before the first words slow down.

On one local Synapse (relaxed limits, and the bot's account exempted from rate limiting
through the admin API), the real `rpbot run` process (INFO logs) and an OpenAI-compatible
fake with a realistic latency (--ttft to the first token, then ~100 tokens streamed over
about 2.5 s), PLAYERS players are onboarded, each with ROOMS story rooms. The load then
rises in steps: at each step the first N players talk in all their rooms at once, each room
sending a line, waiting for the complete reply, thinking --think seconds (jittered), and so
on for --turns lines. Each player's client long-polls /sync and times, per line, send ->
first bot message (first text) and send -> the message reading complete (final text).

Steps run in the order given (repeat a figure to watch memory at a steady load). A step is
over capacity when its p99 first text exceeds the model's own time to first token plus 1 s.
The run stops at the first such step; the capacity is the last step under it.
Reported per step: rooms talking, turns per minute, first/final text p50/p95/p99, the bot's
CPU (share of one core) and RSS, Synapse's CPU, the load generator's CPU. With --profile DIR,
py-spy samples the bot during every step and where its time goes is printed.

Not a test: run it by hand on a quiet machine.

    .venv/bin/python bench/capacity.py --players 40 --rooms 3 --steps 2,5,10,20,30,40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapter.devserver import RegisteredUser
from bench.measure import cpu_seconds, machine, memory_mb, throwaway_homeserver
from tests.adapter.matrix.conftest import RunningBot
from tests.reliability.load import onboard_player
from tests.reliability.support import LINE_TAG, openai_llm
from tests.support.bot_process import BotProcess, write_config
from tests.support.fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from tests.support.synapse import SynapseServer

FILLER = ("The lamp gutters as the wind finds the cracks in the shutters, and the old house answers "
          "with a long creak from somewhere above. ")


def narration(request: RecordedRequest) -> str:
    """About 100 tokens that name the line answered and end with a marker, so completeness shows."""
    tag = LINE_TAG.search(request.last_user_message)
    name = tag.group(0) if tag else "untagged"
    return f"Answering {name}: " + FILLER * 3 + f"[end {name}]"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


# ---------------------------------------------------------------------------- the players

@dataclass
class Outstanding:
    tag: str
    sent_at: float
    first_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AsyncPlayer:
    """One player's client during the measured steps: sends lines and long-polls /sync for the bot's messages."""

    def __init__(self, url: str, account: RegisteredUser, rooms: list[str], bot_id: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {account.access_token}"},
                                      timeout=httpx.Timeout(60, connect=10), limits=httpx.Limits(max_connections=len(rooms) + 2))
        self.rooms = rooms
        self.filter = json.dumps({"presence": {"types": []}, "account_data": {"types": []},
                                  "room": {"state": {"types": []}, "ephemeral": {"types": []}, "account_data": {"types": []},
                                           "timeline": {"types": ["m.room.message"], "senders": [bot_id], "limit": 100}}})
        self.since: str | None = None
        self.outstanding: dict[str, Outstanding] = {}
        self.syncing: asyncio.Task | None = None

    async def start(self) -> None:
        self.since = (await self._sync(0))["next_batch"]
        self.syncing = asyncio.create_task(self._sync_forever())

    async def close(self) -> None:
        if self.syncing is not None:
            self.syncing.cancel()
        await self.http.aclose()

    async def _sync(self, timeout_ms: int) -> dict:
        params = {"timeout": timeout_ms, "filter": self.filter}
        if self.since:
            params["since"] = self.since
        response = await self.http.get("/_matrix/client/v3/sync", params=params, timeout=timeout_ms / 1000 + 60)
        response.raise_for_status()
        return response.json()

    async def _sync_forever(self) -> None:
        while True:
            try:
                body = await self._sync(30_000)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            arrived = time.monotonic()
            self.since = body["next_batch"]
            for room_id, room in body.get("rooms", {}).get("join", {}).items():
                waiting = self.outstanding.get(room_id)
                for event in room.get("timeline", {}).get("events", []):
                    if waiting is not None:
                        self._observe(waiting, event.get("content", {}), arrived)

    @staticmethod
    def _observe(waiting: Outstanding, content: dict, arrived: float) -> None:
        is_edit = content.get("m.relates_to", {}).get("rel_type") == "m.replace"
        body = (content.get("m.new_content") or {}).get("body", "") if is_edit else content.get("body", "")
        if not is_edit and waiting.first_at is None and "Answering" in body:  # body: "Speaker: text"
            waiting.first_at = arrived
        if body.endswith(f"[end {waiting.tag}]"):
            waiting.first_at = waiting.first_at or arrived
            waiting.done.set()

    async def talk(self, room_id: str, tag_prefix: str, turns: int, think_s: float, samples: list, errors: list) -> None:
        await asyncio.sleep(random.uniform(0, think_s))
        for turn in range(turns):
            tag = f"{tag_prefix}-{turn}"
            waiting = self.outstanding[room_id] = Outstanding(tag, time.monotonic())
            try:
                response = await self.http.put(f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{uuid.uuid4().hex}",
                                               json={"msgtype": "m.text", "body": f"I look around and say {tag} to you."})
                response.raise_for_status()
                await asyncio.wait_for(waiting.done.wait(), timeout=60)
                samples.append(Sample(tag, waiting.sent_at, waiting.first_at, time.monotonic()))
            except (TimeoutError, httpx.HTTPError) as exc:
                errors.append(f"{tag}: {type(exc).__name__} {exc}")
            finally:
                self.outstanding.pop(room_id, None)
            await asyncio.sleep(think_s * random.uniform(0.5, 1.5))


# ---------------------------------------------------------------------------- one step

@dataclass
class Sample:
    """One line's times (monotonic, this process): sent, first bot message seen, complete reply seen;
    `asked_model_at` is when the fake model (in this process too) received the narration request."""

    tag: str
    sent_at: float
    first_at: float
    final_at: float
    asked_model_at: float = float("nan")

@dataclass
class StepResult:
    players: int
    rooms: int
    samples: list[Sample]
    errors: list[str]
    seconds: float
    bot_cpu_s: float
    synapse_cpu_s: float
    generator_cpu_s: float
    bot_rss_mb: float
    bot_peak_rss_mb: float
    ttft_s: float

    def row(self) -> dict:
        first = [s.first_at - s.sent_at for s in self.samples]
        final = [s.final_at - s.sent_at for s in self.samples]
        inbound = [s.asked_model_at - s.sent_at for s in self.samples]  # send -> the bot asks the model
        outbound = [s.first_at - s.asked_model_at - self.ttft_s for s in self.samples]  # first token -> the player sees it
        return {
            "players": self.players, "rooms_talking": self.rooms, "lines": len(self.samples), "errors": len(self.errors),
            "turns_per_min": round(len(self.samples) / self.seconds * 60, 1),
            "first_p50_s": round(percentile(first, 50), 3), "first_p95_s": round(percentile(first, 95), 3),
            "first_p99_s": round(percentile(first, 99), 3), "final_p50_s": round(percentile(final, 50), 3),
            "final_p99_s": round(percentile(final, 99), 3),
            "to_model_p50_s": round(percentile(inbound, 50), 3), "to_model_p99_s": round(percentile(inbound, 99), 3),
            "from_model_p50_s": round(percentile(outbound, 50), 3), "from_model_p99_s": round(percentile(outbound, 99), 3),
            "bot_cpu_pct": round(self.bot_cpu_s / self.seconds * 100, 1),
            "bot_cpu_ms_per_turn": round(self.bot_cpu_s / max(1, len(self.samples)) * 1000, 1),
            "synapse_cpu_pct": round(self.synapse_cpu_s / self.seconds * 100, 1),
            "generator_cpu_pct": round(self.generator_cpu_s / self.seconds * 100, 1),
            "bot_rss_mb": round(self.bot_rss_mb, 1), "bot_peak_rss_mb": round(self.bot_peak_rss_mb, 1),
        }


async def run_step(url: str, players: list[tuple[RegisteredUser, list[str]]], bot_id: str, bot_pid: int, synapse_pid: int,
                   llm: FakeOpenAIServer, *, step: int, turns: int, think_s: float, ttft_s: float, profile_to: Path | None) -> StepResult:
    clients = [AsyncPlayer(url, account, rooms, bot_id) for account, rooms in players]
    await asyncio.gather(*(client.start() for client in clients))
    profiler = None
    if profile_to is not None:
        profile_file = profile_to / f"step-{step}-{sum(len(r) for _, r in players)}-rooms.txt"
        py_spy = str(Path(sys.executable).parent / "py-spy")
        profiler = subprocess.Popen([py_spy, "record", "--nonblocking", "-r", "100", "-f", "raw", "-p", str(bot_pid), "-o", str(profile_file)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: list[Sample] = []
    errors: list[str] = []
    cpu_before = (cpu_seconds(bot_pid), cpu_seconds(synapse_pid), cpu_seconds(os.getpid()))
    started = time.monotonic()
    await asyncio.gather(*(client.talk(room, f"line-{step}-{p}-{r}", turns, think_s, samples, errors)
                           for p, client in enumerate(clients) for r, room in enumerate(client.rooms)))
    seconds = time.monotonic() - started
    cpu_after = (cpu_seconds(bot_pid), cpu_seconds(synapse_pid), cpu_seconds(os.getpid()))
    rss, peak = memory_mb(bot_pid), memory_mb(bot_pid, "VmHWM")
    if profiler is not None:
        profiler.send_signal(2)
        profiler.wait(30)
    await asyncio.gather(*(client.close() for client in clients))
    asked = {}
    for request in llm.requests_for(purpose="narrate"):
        tag = LINE_TAG.search(request.last_user_message)
        if tag:
            asked.setdefault(tag.group(0), request.received_monotonic)
    for sample in samples:
        sample.asked_model_at = asked.get(sample.tag, float("nan"))
    return StepResult(len(players), sum(len(rooms) for _, rooms in players), samples, errors, seconds,
                      cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1], cpu_after[2] - cpu_before[2], rss, peak, ttft_s)


# ---------------------------------------------------------------------------- profile summary

# Where a stack's sample goes: the first rule whose marker is in the stack (py-spy raw lines,
# "frame;frame;...;leaf count", each frame "function (path:line)"). Waiting counts as idle.
PROFILE_CATEGORIES = (
    ("idle: aiosqlite worker threads waiting", "aiosqlite/core.py:59)"),
    ("idle: event loop in epoll", "EpollSelector.select"),
    ("nio: receiving and parsing syncs", "AsyncClient.sync ("),
    ("nio: receiving and parsing syncs", "receive_response"),
    ("model's SSE stream", "openai_client.py"),
    ("sending to Matrix (outgoing.py, nio, aiohttp)", "outgoing.py"),
    ("SQL in aiosqlite's threads", "aiosqlite/core.py:63)"),
    ("engine Python (core/)", "(core/"),
    ("rendering markdown", "render.py"),
    ("dispatcher", "dispatcher.py"),
)


def where_time_goes(raw_profile: Path, top: int = 12) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's raw output: (samples, % per category, % of the top own-time frames)."""
    categories: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        own[stack.rsplit(";", 1)[-1]] += count
        category = next((name for name, marker in PROFILE_CATEGORIES if marker in stack),
                        "event loop, aiohttp/httpx plumbing, other")
        categories[category] += count
    scale = 100 / max(1, total)
    return (total, [(c, n * scale) for c, n in categories.most_common()], [(f, n * scale) for f, n in own.most_common(top)])


# ---------------------------------------------------------------------------- main

def exempt_from_rate_limits(url: str, admin: RegisteredUser, user_id: str) -> None:
    response = httpx.post(f"{url}/_synapse/admin/v1/users/{user_id}/override_ratelimit",
                          headers={"Authorization": f"Bearer {admin.access_token}"},
                          json={"messages_per_second": 0, "burst_count": 0}, timeout=30)
    response.raise_for_status()


def onboard_all(bot: RunningBot, server: SynapseServer, players: int, rooms: int) -> list[tuple[RegisteredUser, list[str]]]:
    started = time.monotonic()
    done = 0
    lock = threading.Lock()

    def one(_: int) -> tuple[RegisteredUser, list[str]]:
        nonlocal done
        player, stories = onboard_player(bot, server, rooms)
        player.close()
        with lock:
            done += 1
            if done % 10 == 0:
                print(f"  onboarded {done}/{players} players ({time.monotonic() - started:.0f}s)", flush=True)
        return player.account, stories

    with ThreadPoolExecutor(max_workers=6) as pool:
        return list(pool.map(one, range(players)))


def main(args: argparse.Namespace) -> int:
    steps = [min(int(s), args.players) for s in args.steps.split(",")]
    threshold = args.ttft + 1.0
    profile_to = Path(args.profile).resolve() if args.profile else None
    if profile_to is not None:
        profile_to.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    with throwaway_homeserver("rpbot-capacity-") as (work, server), FakeOpenAIServer() as llm:
        llm.add_rule(Reply(text=narration, first_token_delay_s=args.ttft, chunk_size=16, chunk_delay_s=0.1), purpose="narrate")
        process = None
        try:
            account = server.register("rpbot")
            exempt_from_rate_limits(server.url, server.admin, account.user_id)
            config = write_config(work / "rpbot.toml", homeserver=server.url, user_id=account.user_id, password=account.password,
                                  allowed_users=["@player-*:localhost"], data_dir=work / "data", llm=openai_llm(llm, timeout_s=60))
            # In asyncio debug mode the bot logs every callback that holds its event loop over 100 ms.
            debug = {"PYTHONASYNCIODEBUG": "1"} if args.asyncio_debug else {}
            process = BotProcess(config, work / "rpbot.log", log_level="INFO", env=debug).start()
            bot = RunningBot(process, account.user_id, server)
            print(f"onboarding {args.players} players x {args.rooms} story rooms ...", flush=True)
            players = onboard_all(bot, server, args.players, args.rooms)
            bot_pid = process.process.pid
            synapse_pid = server.server.process.pid
            print(f"bot RSS with {args.players * (args.rooms + 2)} rooms bound, idle: {memory_mb(bot_pid):.1f} MB", flush=True)
            for step, count in enumerate(steps):
                result = asyncio.run(run_step(server.url, players[:count], account.user_id, bot_pid, synapse_pid, llm, step=step,
                                              turns=args.turns, think_s=args.think, ttft_s=args.ttft, profile_to=profile_to))
                row = result.row()
                results.append(row)
                print(json.dumps(row), flush=True)
                for error in result.errors[:3]:
                    print(f"  error: {error}", flush=True)
                if (row["first_p99_s"] > threshold or result.errors) and not args.every_step:
                    break
            final_rss = memory_mb(bot_pid), memory_mb(bot_pid, "VmHWM")
        finally:
            if process is not None:
                process.stop()
                if args.bot_log:
                    Path(args.bot_log).write_text(process.log_text())
                slow_callbacks = [line for line in process.log_text().splitlines() if "asyncio" in line and "Executing" in line]

    print(f"\nmachine: {machine()}; Synapse, the bot, the fake model and the players all on this machine")
    print(f"model: {args.ttft:.2f}s to first token, ~2.5s streaming; players think {args.think:.1f}s (x0.5-1.5) between lines, "
          f"{args.turns} lines per room per step; threshold: p99 first text > {threshold:.2f}s")
    under = [r for r in results if r["first_p99_s"] <= threshold and not r["errors"]]
    if under:
        best = under[-1]
        print(f"capacity: {best['players']} players x {args.rooms} rooms = {best['rooms_talking']} rooms talking at once, "
              f"{best['turns_per_min']} turns/min, p99 first text {best['first_p99_s']}s, bot CPU {best['bot_cpu_pct']}% of a core, "
              f"bot RSS {best['bot_rss_mb']} MB (peak {best['bot_peak_rss_mb']} MB)")
    if len(under) == len(results):
        print("every step stayed under the threshold: raise --players/--steps to find the limit")
    print(f"bot RSS at the end: {final_rss[0]:.1f} MB (peak {final_rss[1]:.1f} MB)")
    if args.asyncio_debug:
        print(f"event loop held over 100 ms (asyncio debug): {len(slow_callbacks)} times")
        for line in slow_callbacks[:10]:
            print(f"  {line[:300]}")
    if profile_to is not None:
        for raw in sorted(profile_to.glob("step-*.txt"), key=lambda p: int(p.name.split("-")[1])):
            samples, categories, own = where_time_goes(raw)
            print(f"\nprofile {raw.name} ({samples} samples): where the time goes")
            for name, share in categories:
                print(f"  {share:5.1f}%  {name}")
            print("  top frames by own time:")
            for frame, share in own:
                print(f"  {share:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=40)
    parser.add_argument("--rooms", type=int, default=3, help="story rooms per player, all talking at once")
    parser.add_argument("--steps", default="2,5,10,20,30,40", help="players talking at each step")
    parser.add_argument("--turns", type=int, default=5, help="lines per room per step")
    parser.add_argument("--think", type=float, default=4.0, help="seconds a player waits after a reply before the next line")
    parser.add_argument("--ttft", type=float, default=0.8, help="the fake model's time to its first token")
    parser.add_argument("--every-step", action="store_true", help="run every step even past the threshold (memory at a steady load)")
    parser.add_argument("--asyncio-debug", action="store_true", help="run the bot in asyncio debug mode; report slow callbacks")
    parser.add_argument("--bot-log", help="keep the bot's log here")
    parser.add_argument("--profile", help="directory for py-spy profiles of the bot, one per step")
    sys.exit(main(parser.parse_args()))
