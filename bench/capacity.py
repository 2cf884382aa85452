"""Capacity: how many players rpbot carries before the first words slow down.

On one local Synapse (relaxed limits, and each bot account exempted from rate limiting through
the admin API), --processes real `rpbot run` processes (INFO logs; each its own bot account,
data_dir and config, all on one database) and an OpenAI-compatible fake with a realistic
latency (--ttft to the first token, then ~100 tokens streamed over about 2.5 s), PLAYERS
players are onboarded, split evenly across the bots, each with ROOMS story rooms. The load then
rises in steps: at each step the first N players talk in all their rooms at once, each room
sending a line, waiting for the complete reply, thinking --think seconds (jittered), and so on
for --turns lines. Each player's client long-polls /sync and times, per line, send -> first bot
message (first text) and send -> the message reading complete (final text).

--database sqlite: SQLite files in the bot's data_dir (one process only). --database postgresql:
one database on a throwaway PostgreSQL server started from the machine's binaries on its stock
settings (durable commits included), shared by every bot process.

Steps run in the order given (repeat a figure to watch memory at a steady load). A step is
over capacity when its p99 first text exceeds the model's own time to first token plus 1 s.
The run stops at the first such step; the capacity is the last step under it.
Reported per step: rooms talking, turns per minute, first/final text p50/p95/p99, the bots'
CPU (share of one core, summed and each) and RSS, Synapse's CPU, PostgreSQL's CPU (the server
and all its processes), the load generator's CPU. With --profile DIR, py-spy samples each bot
during every step and where its time goes is printed.

Not a test: run it by hand on a quiet machine.

    .venv/bin/python bench/capacity.py --players 40 --rooms 3 --steps 2,5,10,20,30,40
    .venv/bin/python bench/capacity.py --database postgresql --processes 2 --players 16 --steps 2,4,8,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bot_profile import print_profiles, start_profiler, stop_profiler
from bench.capacity_bots import BenchDatabase, bench_database, onboard_all, running_bots
from bench.capacity_players import AsyncPlayer, BenchPlayer, Sample, narration, percentile
from bench.measure import cpu_seconds, machine, memory_mb, process_tree_cpu_seconds, throwaway_homeserver
from tests.reliability.support import LINE_TAG, openai_llm
from tests.support.fake_openai import FakeOpenAIServer, Reply


@dataclass
class StepResult:
    players: int
    rooms: int
    samples: list[Sample]
    errors: list[str]
    seconds: float
    bot_cpu_s: list[float]  # each bot process
    synapse_cpu_s: float
    postgres_cpu_s: float | None
    generator_cpu_s: float
    bot_rss_mb: list[float]
    bot_peak_rss_mb: list[float]
    ttft_s: float

    def row(self) -> dict:
        first = [s.first_at - s.sent_at for s in self.samples]
        final = [s.final_at - s.sent_at for s in self.samples]
        inbound = [s.asked_model_at - s.sent_at for s in self.samples]  # send -> the bot asks the model
        outbound = [s.first_at - s.asked_model_at - self.ttft_s for s in self.samples]  # first token -> the player sees it

        def share(cpu_s: float) -> float:
            return round(cpu_s / self.seconds * 100, 1)

        return {
            "players": self.players, "rooms_talking": self.rooms, "lines": len(self.samples), "errors": len(self.errors),
            "turns_per_min": round(len(self.samples) / self.seconds * 60, 1),
            "first_p50_s": round(percentile(first, 50), 3), "first_p95_s": round(percentile(first, 95), 3),
            "first_p99_s": round(percentile(first, 99), 3), "final_p50_s": round(percentile(final, 50), 3),
            "final_p99_s": round(percentile(final, 99), 3),
            "to_model_p50_s": round(percentile(inbound, 50), 3), "to_model_p99_s": round(percentile(inbound, 99), 3),
            "from_model_p50_s": round(percentile(outbound, 50), 3), "from_model_p99_s": round(percentile(outbound, 99), 3),
            "bot_cpu_pct": share(sum(self.bot_cpu_s)), "bot_cpu_pct_each": [share(cpu) for cpu in self.bot_cpu_s],
            "bot_cpu_ms_per_turn": round(sum(self.bot_cpu_s) / max(1, len(self.samples)) * 1000, 1),
            "synapse_cpu_pct": share(self.synapse_cpu_s),
            "postgres_cpu_pct": None if self.postgres_cpu_s is None else share(self.postgres_cpu_s),
            "generator_cpu_pct": share(self.generator_cpu_s),
            "bot_rss_mb": [round(mb, 1) for mb in self.bot_rss_mb], "bot_peak_rss_mb": [round(mb, 1) for mb in self.bot_peak_rss_mb],
        }


@dataclass(frozen=True)
class Watched:
    """The processes whose CPU a step measures."""

    bot_pids: list[int]
    synapse_pid: int
    postgres_pid: int | None

    def cpu(self) -> tuple[list[float], float, float | None, float]:
        """CPU seconds so far: each bot, Synapse, PostgreSQL (all its processes), this load generator."""
        postgres = None if self.postgres_pid is None else process_tree_cpu_seconds(self.postgres_pid)
        return [cpu_seconds(pid) for pid in self.bot_pids], cpu_seconds(self.synapse_pid), postgres, cpu_seconds(os.getpid())


async def run_step(url: str, players: list[BenchPlayer], watched: Watched, llm: FakeOpenAIServer, *, step: int, turns: int,
                   think_s: float, ttft_s: float, profile_to: Path | None) -> StepResult:
    clients = [AsyncPlayer(url, player) for player in players]
    await asyncio.gather(*(client.start() for client in clients))
    rooms = sum(len(player.rooms) for player in players)
    profilers = [] if profile_to is None else [
        start_profiler(pid, profile_to / f"step-{step}-{rooms}-rooms-bot-{number}.txt")
        for number, pid in enumerate(watched.bot_pids, start=1)]
    samples: list[Sample] = []
    errors: list[str] = []
    before = watched.cpu()
    started = time.monotonic()
    await asyncio.gather(*(client.talk(room, f"line-{step}-{p}-{r}", turns, think_s, samples, errors)
                           for p, client in enumerate(clients) for r, room in enumerate(client.rooms)))
    seconds = time.monotonic() - started
    after = watched.cpu()
    rss = [memory_mb(pid) for pid in watched.bot_pids]
    peak = [memory_mb(pid, "VmHWM") for pid in watched.bot_pids]
    for profiler in profilers:
        stop_profiler(profiler)
    await asyncio.gather(*(client.close() for client in clients))
    asked = {}
    for request in llm.requests_for(purpose="narrate"):
        tag = LINE_TAG.search(request.last_user_message)
        if tag:
            asked.setdefault(tag.group(0), request.received_monotonic)
    for sample in samples:
        sample.asked_model_at = asked.get(sample.tag, float("nan"))
    postgres_cpu = None if before[2] is None or after[2] is None else after[2] - before[2]
    return StepResult(len(players), rooms, samples, errors, seconds, [b - a for a, b in zip(before[0], after[0], strict=True)],
                      after[1] - before[1], postgres_cpu, after[3] - before[3], rss, peak, ttft_s)


def summarize(args: argparse.Namespace, database: BenchDatabase, bot_ids: list[str], results: list[dict],
              final_rss: list[tuple[float, float]], slow_callbacks: list[str]) -> None:
    threshold = args.ttft + 1.0
    print(f"\nmachine: {machine()}; Synapse, the bots, the database, the fake model and the players all on this machine")
    print(f"database: {database.description}")
    print(f"bot processes: {len(bot_ids)} ({', '.join(bot_ids)}), players split evenly across them")
    print(f"model: {args.ttft:.2f}s to first token, ~2.5s streaming; players think {args.think:.1f}s (x0.5-1.5) between lines, "
          f"{args.turns} lines per room per step; threshold: p99 first text > {threshold:.2f}s")
    # The capacity is the last step before the first one over the threshold (with --every-step, later
    # steps back under it do not count).
    over = [r for r in results if r["first_p99_s"] > threshold or r["errors"]]
    under = results[:results.index(over[0])] if over else results
    if over:
        print(f"over capacity first at {over[0]['players']} players ({over[0]['rooms_talking']} rooms talking): "
              f"p99 first text {over[0]['first_p99_s']}s, {over[0]['errors']} errors")
    if under:
        best = under[-1]
        postgres = "" if best["postgres_cpu_pct"] is None else f", PostgreSQL CPU {best['postgres_cpu_pct']}%"
        print(f"capacity: {best['players']} players x {args.rooms} rooms = {best['rooms_talking']} rooms talking at once, "
              f"{best['turns_per_min']} turns/min, p99 first text {best['first_p99_s']}s, bot CPU {best['bot_cpu_pct']}% of a core "
              f"(each {best['bot_cpu_pct_each']}), Synapse CPU {best['synapse_cpu_pct']}%{postgres}, "
              f"bot RSS {best['bot_rss_mb']} MB (peak {best['bot_peak_rss_mb']} MB)")
    else:
        print("capacity: none, the first step was already over the threshold")
    if len(under) == len(results):
        print("every step stayed under the threshold: raise --players/--steps to find the limit")
    print("bot RSS at the end: " + ", ".join(f"{rss:.1f} MB (peak {peak:.1f} MB)" for rss, peak in final_rss))
    if args.asyncio_debug:
        print(f"event loop held over 100 ms (asyncio debug): {len(slow_callbacks)} times")
        for line in slow_callbacks[:10]:
            print(f"  {line[:300]}")


def main(args: argparse.Namespace) -> int:
    if args.database == "sqlite" and args.processes != 1:
        print("several bot processes share one database: use --database postgresql", file=sys.stderr)
        return 2
    steps = [min(int(s), args.players) for s in args.steps.split(",")]
    threshold = args.ttft + 1.0
    profile_to = Path(args.profile).resolve() if args.profile else None
    if profile_to is not None:
        profile_to.mkdir(parents=True, exist_ok=True)
    # In asyncio debug mode a bot logs every callback that holds its event loop over 100 ms.
    debug = {"PYTHONASYNCIODEBUG": "1"} if args.asyncio_debug else {}
    results: list[dict] = []
    with throwaway_homeserver("rpbot-capacity-") as (work, server), FakeOpenAIServer() as llm, \
            bench_database(args.database) as database:
        print(f"database: {database.description}", flush=True)
        llm.add_rule(Reply(text=narration, first_token_delay_s=args.ttft, chunk_size=16, chunk_delay_s=0.1), purpose="narrate")
        with running_bots(server, work, args.processes, database.url, openai_llm(llm, timeout_s=60), debug) as bots:
            print(f"onboarding {args.players} players x {args.rooms} story rooms across {len(bots)} bot process(es) ...", flush=True)
            players = onboard_all(bots, server, args.players, args.rooms)
            watched = Watched([bot.process.process.pid for bot in bots if bot.process.process is not None],
                              server.server.process.pid, database.server_pid)
            print(f"bot RSS with {args.players * (args.rooms + 2)} rooms bound, idle: "
                  + ", ".join(f"{memory_mb(pid):.1f} MB" for pid in watched.bot_pids), flush=True)
            for step, count in enumerate(steps):
                result = asyncio.run(run_step(server.url, players[:count], watched, llm, step=step, turns=args.turns,
                                              think_s=args.think, ttft_s=args.ttft, profile_to=profile_to))
                row = result.row()
                results.append(row)
                print(json.dumps(row), flush=True)
                for error in result.errors[:3]:
                    print(f"  error: {error}", flush=True)
                if (row["first_p99_s"] > threshold or result.errors) and not args.every_step:
                    break
            final_rss = [(memory_mb(pid), memory_mb(pid, "VmHWM")) for pid in watched.bot_pids]
        logs = [bot.process.log_text() for bot in bots]
        if args.bot_log:
            for number, log in enumerate(logs, start=1):
                path = Path(args.bot_log)
                (path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")).write_text(log)
        slow_callbacks = [line for log in logs for line in log.splitlines() if "asyncio" in line and "Executing" in line]
        summarize(args, database, [bot.user_id for bot in bots], results, final_rss, slow_callbacks)
    if profile_to is not None:
        print_profiles(profile_to)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--players", type=int, default=40)
    parser.add_argument("--rooms", type=int, default=3, help="story rooms per player, all talking at once")
    parser.add_argument("--steps", default="2,5,10,20,30,40", help="players talking at each step")
    parser.add_argument("--turns", type=int, default=5, help="lines per room per step")
    parser.add_argument("--think", type=float, default=4.0, help="seconds a player waits after a reply before the next line")
    parser.add_argument("--ttft", type=float, default=0.8, help="the fake model's time to its first token")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="SQLite files in the bot's data_dir, or one database on a throwaway PostgreSQL on its stock settings")
    parser.add_argument("--processes", type=int, default=1, help="bot processes (each its own account), all on the one database")
    parser.add_argument("--every-step", action="store_true", help="run every step even past the threshold (memory at a steady load)")
    parser.add_argument("--asyncio-debug", action="store_true", help="run the bots in asyncio debug mode; report slow callbacks")
    parser.add_argument("--bot-log", help="keep the (first) bot's log here; the others' beside it, named -2, -3, ...")
    parser.add_argument("--profile", help="directory for py-spy profiles of the bots, one per bot and step")
    sys.exit(main(parser.parse_args()))
