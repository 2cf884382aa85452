"""Benchmark: replaying a 100,000-event story log, on SQLite and on PostgreSQL.

Not a test (never run by pytest). Usage:

    .venv/bin/python bench/replay.py [--events 100000] [--chats 20] [--db /tmp/rpbot-replay.sqlite3] [--reuse]
                                     [--database-url postgresql://...]

Builds the log with the real engine on SQLite (`Engine.post_turn`, a regenerate now and then,
scene closes and the background rolling summaries, with long_story's scripted zero-latency model)
across `--chats` chats, a scene of 5-60 exchanges in each chat in turn, until the log holds
`--events` events; `--reuse` keeps a log built before. Then, timed:

- `replay(db)` on a copy of the SQLite file: every projection cleared and the whole log applied again;
- `rpbot migrate`'s copy (`move_stories`): the log copied into an empty PostgreSQL database, every
  projection rebuilt there by replay, and every table compared with the SQLite file's;
- `replay(db)` again on that PostgreSQL database.

PostgreSQL is a throwaway server started from the machine's binaries on PostgreSQL's own defaults
(durable commits), or the empty database `--database-url` names. Prints the log's events by kind
and the statements a replay sends per event on each backend.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.long_story import HOST, filler, scripted_model
from bench.measure import machine, postgres_version, throwaway_postgres
from core.engine import Engine
from core.eventlog import open_database, replay
from core.eventlog.transfer import move_stories
from core.storage import Connection
from tests.support.statements import counting_statements

SCENE_LENGTHS = (5, 8, 12, 20, 30, 45, 60)
REGENERATE_EVERY = 25  # exchanges, on average


async def build(path: Path, events: int, chats: int, seed: int) -> None:
    rng = random.Random(seed)
    engine = await Engine.open(path, scripted_model())
    try:
        chat_ids = []
        for n in range(chats):
            chat = await engine.create_chat(owner=f"@player{n}:hs", host=HOST)
            await engine.greeting(chat.chat_id)
            chat_ids.append(chat.chat_id)
        exchanges, started = 0, time.monotonic()
        while await log_size(engine.db.reader) < events:
            for chat in chat_ids:
                for _ in range(rng.choice(SCENE_LENGTHS)):
                    async for _ in engine.post_turn(chat, filler(rng, rng.randint(6, 30)), f"${exchanges}"):
                        pass
                    if rng.randrange(REGENERATE_EVERY) == 0:
                        async for _ in engine.regenerate(chat):
                            pass
                    exchanges += 1
                await engine.close_scene(chat)
            await engine.pipeline.summary_jobs.settle()
            print(f"  {exchanges:,} exchanges, {await log_size(engine.db.reader):,} events "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        await engine.close()


async def log_size(conn: Connection) -> int:
    row = await conn.fetch_one("SELECT count(*) FROM events")
    return 0 if row is None else int(row[0])


async def timed_replay(location: str | Path, label: str) -> None:
    db = await open_database(location)
    try:
        size = await log_size(db.reader)
        with counting_statements(db.writer) as statements:
            started = time.perf_counter()
            replayed = await replay(db)
            took = time.perf_counter() - started
        assert replayed == size
        print(f"replay on {label}: {replayed:,} events in {took:.1f} s ({replayed / took:,.0f} events/s); "
              f"{sum(statements.values()) / replayed:.2f} statements per event", flush=True)
    finally:
        await db.close()


async def events_by_kind(path: Path) -> str:
    db = await open_database(path)
    try:
        rows = await db.reader.fetch_all("SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY n DESC, kind")
    finally:
        await db.close()
    return ", ".join(f"{row['kind']} {row['n']:,}" for row in rows)


async def on_postgres(path: Path, url: str) -> None:
    started = time.perf_counter()
    report = await move_stories(path, url)
    took = time.perf_counter() - started
    print(f"rpbot migrate's copy to PostgreSQL (copy, replay, compare): {report.events:,} events in {took:.1f} s; "
          f"{'the two agree' if report.agree else 'DIFFERENCES: ' + '; '.join(report.differences)}", flush=True)
    await timed_replay(url, "PostgreSQL")


async def main(args: argparse.Namespace) -> None:
    print(machine(), flush=True)
    path = Path(args.db)
    if not (args.reuse and path.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"building a log of {args.events:,} events in {args.chats} chats", flush=True)
        await build(path, args.events, args.chats, args.seed)
    print(f"events by kind: {await events_by_kind(path)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rpbot-replay-") as tmp:
        copy = Path(tmp) / "engine.sqlite3"
        shutil.copyfile(path, copy)
        await timed_replay(copy, "SQLite")
    if args.database_url:
        await on_postgres(path, args.database_url)
    else:
        with throwaway_postgres() as server:
            print(postgres_version(server), flush=True)
            await on_postgres(path, server.url())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--db", default="/tmp/rpbot-replay.sqlite3", help="the SQLite file the log is built in (kept)")
    parser.add_argument("--reuse", action="store_true", help="replay the log already in --db instead of building it")
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database instead of a throwaway server")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
