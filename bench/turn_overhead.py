"""Benchmark: engine time per turn, excluding the model, in a chat with 10,000 prior turns.

Not a test (never run by pytest). Usage:

    .venv/bin/python bench/turn_overhead.py [--prior-turns 10000] [--turns 200] [--guest] [--database URL] [--no-analyze]

Builds a chat with `--prior-turns` turns (half player lines, half replies, each
exchange with its memory and edge change, as the pipeline writes them) in one
transaction, then times `Engine.post_turn` end to end for `--turns` new turns
with a zero-latency FakeLLM, so the figure is the engine's own overhead: user
turn, routing (a classifier call only with `--guest`), prompt assembly, stream
relay, and the reply transaction (turn, memory, edge, digests).  Prints p50, p90,
p99 and max in milliseconds, one regenerate's time, and the time to replay the whole log.
`--database postgresql://...` runs it in that (empty) PostgreSQL database instead of a SQLite file;
there the built history is analyzed (`VACUUM ANALYZE`, what autovacuum does to a live database's
tables as they grow) before the turns are timed, unless `--no-analyze`.  Also printed: the
statements a turn sends, on average (each a round trip to a PostgreSQL server).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.engine import Engine
from core.eventlog import replay
from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from core.services.memory_write import record_turn_memory
from core.state import edges as edge_state
from core.state import turns as turn_state
from core.storage import Dialect
from tests.support.statements import counting_statements

HOST, GUEST = "wren-halloway", "odile-marchetti"
OWNER = "@bench:hs"
STOPWORDS = "the a and to of i you it in that is was he she for on with as at but my your we".split()
SYLLABLES = "ba be bo ca ce co da de do fa fe fi ga go ha he la le lo ma me mi na ne no ra re ri sa se so ta te to".split()
VOCABULARY_SIZE = 3000
ZIPF_EXPONENT = 1.07  # word frequencies in conversation follow Zipf's law


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipfian frequencies (no dictionary file needed), and cumulative weights."""
    words = list(dict.fromkeys("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
                               for _ in range(VOCABULARY_SIZE * 2)))[:VOCABULARY_SIZE]
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1 / rank ** ZIPF_EXPONENT
        cumulative.append(total)
    return words, cumulative


WORDS, CUMULATIVE = vocabulary(random.Random(1))
REPLY = "*Wren glances at the window.* The rain will not stop tonight, I think. Stay a while."


def line(rng: random.Random, n: int) -> str:
    """About `n` words: content words drawn by Zipf frequency, every third one a stopword."""
    words = [rng.choice(STOPWORDS) if i % 3 == 2 else rng.choices(WORDS, cum_weights=CUMULATIVE)[0]
             for i in range(n)]
    return " ".join(words).capitalize() + "."


async def build_history(engine: Engine, chat_id: str, prior_turns: int, rng: random.Random) -> None:
    async with engine.db.transaction() as tx:
        for i in range(prior_turns // 2):
            user, _ = await turn_state.record_turn(tx, chat_id, "user", OWNER, line(rng, 12), source_id=f"$old{i}",
                                                   speaker_name="Tobin")
            reply, _ = await turn_state.record_turn(
                tx, chat_id, "assistant", HOST, line(rng, 30), source_id=f"$old{i}#reply"
            )
            await record_turn_memory(tx, chat_id, lines=[user], reply_turn=reply, speaker_name="Wren",
                                     name_of=lambda turn: turn.speaker_name or "Tobin")
            if i % 10 == 0:  # a relationship reading now and then, as a story has them
                await edge_state.adjust_edge(tx, chat_id, HOST, OWNER, affinity_delta=1, cause_turn_id=reply.turn_id)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(prior_turns: int, turns: int, guest: bool, database: str | None, analyze: bool) -> None:
    rng = random.Random(7)
    fake = FakeLLM(routes={"narrate": REPLY, "addressee": AddresseeDecision(speaker=HOST, confidence="high"), "lifecycle": {},
                           "relationship": {"affinity": 0, "trust": 0, "why": ""}})
    with tempfile.TemporaryDirectory() as tmp:
        engine = await Engine.open(database or Path(tmp) / "bench.sqlite3", fake)
        try:
            chat = await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST if guest else None)
            started = time.perf_counter()
            await build_history(engine, chat.chat_id, prior_turns, rng)
            print(f"built {prior_turns} prior turns in {time.perf_counter() - started:.1f} s")
            if analyze and engine.db.dialect is Dialect.POSTGRESQL:
                await engine.db.writer.execute("VACUUM ANALYZE")
            for i in range(5):  # warm-up
                [_ async for _ in engine.post_turn(chat.chat_id, line(rng, 12), f"$warm{i}")]
            timings = []
            with counting_statements(engine.db.writer, engine.db.reader) as statements:
                for i in range(turns):
                    text = line(rng, 12)
                    t0 = time.perf_counter()
                    async for update in engine.post_turn(chat.chat_id, text, f"$new{i}"):
                        last = update
                    timings.append((time.perf_counter() - t0) * 1000)
                    assert last.done
            t0 = time.perf_counter()
            [_ async for _ in engine.regenerate(chat.chat_id)]
            regenerate_ms = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            events = await replay(engine.db)
            replay_s = time.perf_counter() - t0
        finally:
            await engine.close()
    print(f"chat: {'host + guest (one classifier call)' if guest else 'one character'}; "
          f"{turns} turns after {prior_turns} prior turns")
    print(f"engine time per turn (ms): p50 {percentile(timings, 50):.1f}  p90 {percentile(timings, 90):.1f}  "
          f"p99 {percentile(timings, 99):.1f}  max {max(timings):.1f}  mean {statistics.mean(timings):.1f}")
    print(f"statements per turn: {sum(statements.values()) / turns:.1f} (the turn's own and its after-turn work's)")
    print(f"one regenerate (ms): {regenerate_ms:.1f}")
    print(f"replay of the whole log ({events} events): {replay_s:.1f} s ({'PostgreSQL' if database else 'SQLite'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior-turns", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--guest", action="store_true", help="a two-character chat (adds the routing call)")
    parser.add_argument("--database", default=None, help="an empty PostgreSQL database (postgresql://...) instead of a SQLite file")
    parser.add_argument("--no-analyze", action="store_true",
                        help="on PostgreSQL, time the turns right after the build, before its tables are analyzed")
    args = parser.parse_args()
    asyncio.run(run(args.prior_turns, args.turns, args.guest, args.database, not args.no_analyze))


if __name__ == "__main__":
    main()
