"""Benchmark: memory search latency and append rate on a large engine database.

Not a test; run by hand (see bench/RESULTS.md for figures and the exact command):

    .venv/bin/python bench/memory_search.py --db /tmp/rpbot-bench.sqlite3
    # the same memories in PostgreSQL (a throwaway server on its defaults), copied from that file:
    .venv/bin/python bench/memory_search.py --postgres --copy-from /tmp/rpbot-bench.sqlite3

It builds (or, with --reuse, reopens) a database with --total memories across
--chats chats, one of which (the "big" chat) holds --big memories, all written
through `append_and_apply` (bulk-loaded in large transactions, which is what
makes 1M events take minutes rather than hours).  Text is generated from word
lists with a fixed seed, words drawn with a Zipf-like skew so that common words
are very common, as in real prose.  It then reports:

- p50 / p99 / max of `search_memories` for the big chat and for a typical chat,
  with player-like queries drawn from the same skewed vocabulary;
- p50 / p99 of `recent_memories_for` for the big chat;
- the true `append_and_apply` rate: one event per transaction, as the live path
  does it (sequential, then from concurrent coroutines).

On PostgreSQL (`--postgres` starts a throwaway server from the machine's binaries,
`--database-url` names one), `--copy-from` fills the database with a SQLite bench database's
rows (characters, chats and their players, memories and their witnesses, the full-text index built by its
triggers) with COPY: the searches read the same rows however they were written, and writing a
million events again takes far longer than copying them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.measure import postgres_version, throwaway_postgres
from core.eventlog import Database, Transaction, append_and_apply, open_database
from core.eventlog.events import CharacterRegistered, MemoryRecorded
from core.eventlog.projections import memory_id_range
from core.state import memory, world

START = datetime(1890, 10, 3, 8, 0)

NAMES = """Mara Tobin Elric Sable Wren Ilse Corvin Petra Dax Lio Nessa Orrin Brisa Kael Yuna Hale Vesper
Rook Anika Bram Odile Tamsin Juniper Cassius Mireille Fenwick Hollis Saoirse Ezra Lumi Thaddeus Noor Piet
Greta Oskar Delphine Ansel Marisol Idris Beatrix""".split()
NPCS = [w.strip() for w in """the harbourmaster, the innkeeper, a fisherman, the old priest, a courier,
the mayor, a smuggler, the blacksmith, a stranger, the ferryman, the widow, the baker's boy,
a tax collector, the lamplighter""".split(",")]
VERBS = """found lost hid stole broke mended carried buried sold bought painted burned opened locked
traded forged read wrote sketched followed warned promised remembered forgot questioned trusted betrayed
rescued chased guarded studied mapped cleaned sharpened wrapped weighed counted measured returned""".split()
ADJECTIVES = """old silver rusted broken crimson tiny heavy secret forgotten cracked golden wet bloodied
ancient strange cold warm sealed empty hollow crooked shining pale dark salt-stained carved faded
glass wooden iron velvet bitter sweet quiet loud hidden borrowed stolen precious worthless fragile""".split()
NOUNS = """key map letter lantern knife ring coin book compass bell rope boat door window chest box
bottle cup candle mirror clock watch locket medallion sword shield helmet cloak hat scarf glove boot
bag basket net hook anchor sail oar mast flag banner painting statue vase jar barrel crate sack
ledger journal diary scroll charter deed contract will seal stamp ink quill pen feather bone skull
shell pearl stone gem crystal feather-quill harp flute drum violin song poem riddle secret rumour
promise debt wager bet prize reward bounty ransom tax toll fee bribe gift present token keepsake
photograph portrait sketch chart blueprint recipe potion tincture herb root mushroom flower seed
apple bread cheese wine ale tea coffee soup stew pie cake honey salt pepper sugar flour egg fish
crab eel oyster gull crow raven owl cat dog horse goat sheep cow pig rat mouse spider moth beetle
storm fog rain snow wind tide wave current reef rock cliff cave tunnel bridge tower wall gate
well fountain garden orchard field forest river lake pond marsh island harbour dock pier lighthouse
chapel church temple shrine graveyard tomb crypt cellar attic kitchen hall library study workshop
forge mill bakery tavern inn market square street alley stair roof chimney cart carriage wagon""".split()
PLACES = [w.strip() for w in """the harbour, the lighthouse, the old quarter, the market, the chapel, the inn,
the docks, the cliffs, the graveyard, the library, the mill, the bridge, the square, the cellar,
the attic, the tavern, the forest, the marsh, the island, the orchard, the tower, the crypt,
the ferry, the fishmarket, the customs house""".split(",")]
FEELINGS = """angry relieved frightened amused suspicious grateful jealous ashamed proud curious sad
hopeful guilty furious delighted nervous calm bitter tender wary""".split()
TIMES = [w.strip() for w in """at dawn, at dusk, at midnight, before the storm, after the funeral,
during the festival, on market day, in the fog, at low tide, under the full moon, before breakfast,
after the bells""".split(",")]

TEMPLATES = (
    "{name} {verb} the {adj} {noun} near {place} {time}.",
    "You {verb} the {noun} that {name} had {verb2} {time}, and {name2} looked {feeling}.",
    "{name} told you that {npc} {verb} a {adj} {noun} at {place}.",
    "{name} was {feeling} when you asked about the {noun} and the {noun2}.",
    "At {place}, {name} showed you a {adj} {noun}; it smelled of {noun2}.",
    "{name} promised to bring the {noun} to {place} {time}, but {npc} {verb} it first.",
    "You and {name} argued about the {adj} {noun}; {name2} sided with you.",
    "{npc} warned {name} that the {noun} at {place} was {adj}.",
    "{name} admitted to being {feeling} about the {noun} {time}.",
    "Someone {verb} {name}'s {noun} from {place}; only a {adj} {noun2} was left behind.",
    "{name} hummed a song about a {adj} {noun} while you {verb} the {noun2}.",
    "{time}, {name} and {name2} met at {place} to trade a {noun} for a {adj} {noun2}.",
)

QUERY_TEMPLATES = (
    "what did {name} say about the {noun}?",
    "the {adj} {noun}",
    "where is the {noun} from {place}?",
    "{name} {noun} {place}",
    "Do you remember the {noun} and the {noun2}?",
    "who {verb} the {noun}",
    "tell me about {npc} and the {noun}",
    "{noun}",
)


class Vocabulary:
    """Word lists sampled with a Zipf-like skew (weight 1/rank), from one seeded RNG."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lists = {
            "name": NAMES, "npc": NPCS, "verb": VERBS, "adj": ADJECTIVES, "noun": NOUNS,
            "place": PLACES,
            "feeling": FEELINGS, "time": TIMES,
        }
        self.cumulative = {
            key: list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
            for key, words in self.lists.items()
        }

    def word(self, key: str) -> str:
        cumulative = self.cumulative[key]
        return self.lists[key][bisect.bisect(cumulative, self.rng.random() * cumulative[-1])]

    def fill(self, template: str) -> str:
        slots = {}
        for key in self.lists:
            slots[key] = self.word(key)
            slots[key + "2"] = self.word(key)
        text = template.format(**slots)
        return text[0].upper() + text[1:]

    def memory_text(self) -> str:
        return self.fill(self.rng.choice(TEMPLATES))

    def query(self) -> str:
        return self.fill(self.rng.choice(QUERY_TEMPLATES))


def character_id(n: int) -> str:
    return f"char-{n:03d}"


def chat_id(n: int) -> str:
    return f"chat-{n:04d}"


def chat_sizes(total: int, chats: int, big: int) -> list[int]:
    rest, remainder = divmod(total - big, chats - 1)
    return [big] + [rest + (1 if i < remainder else 0) for i in range(chats - 1)]


def owner_of(chat_number: int) -> str:
    return f"@player{chat_number % 50}:localhost"


def memory_payload(vocab: Vocabulary, chat: str, host: str, guest: str, n: int) -> MemoryRecorded:
    rng = vocab.rng
    player = owner_of(int(chat.removeprefix("chat-")))
    witnesses = [w for w, p in ((player, 0.8), (host, 0.85), (guest, 0.5)) if rng.random() < p] or [host]
    return MemoryRecorded(
        chat_id=chat, text=vocab.memory_text(), witnesses=witnesses,
        significance=rng.choice((1, 1, 2, 2, 2, 3)), story_time=START + timedelta(minutes=7 * n),
    )


def cast_of(chat_number: int, characters: int) -> tuple[str, str]:
    return character_id(chat_number % characters), character_id((chat_number * 7 + 3) % characters)


async def build(db: Database, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    async with db.transaction() as tx:
        for n in range(args.characters):
            await append_and_apply(tx, "character_registered", CharacterRegistered(
                character_id=character_id(n), name=NAMES[n % len(NAMES)] + f" {n}"))
        for n in range(args.chats):
            host, guest = cast_of(n, args.characters)
            await world.create_chat(tx, owner=owner_of(n), host=host, guest=guest,
                                    clock=START, chat_id=chat_id(n))
    sizes = chat_sizes(args.total, args.chats, args.big)
    # Memories arrive interleaved across chats, as they would in a live deployment.
    order = [c for c, size in enumerate(sizes) for _ in range(size)]
    random.Random(args.seed + 1).shuffle(order)
    written = [0] * args.chats
    vocabularies = [Vocabulary(args.seed * 1000 + k) for k in range(args.loaders)]

    async def load(tx: Transaction, chats: list[int], k: int) -> None:
        for c in chats:
            if c % args.loaders == k:
                host, guest = cast_of(c, args.characters)
                payload = memory_payload(vocabularies[k], chat_id(c), host, guest, written[c])
                await append_and_apply(tx, "memory_recorded", payload)
                written[c] += 1

    for offset in range(0, len(order), args.batch):
        # Loaders own disjoint sets of chats, so each chat's events stay in order (memory
        # ids follow the log, as replay requires) while one loader's Python work overlaps
        # another's SQL on the connection thread.  A bulk-load device, not a live pattern.
        async with db.transaction() as tx:
            batch = order[offset:offset + args.batch]
            await asyncio.gather(*(load(tx, batch, k) for k in range(args.loaders)))
        done = offset + args.batch
        if done % (args.batch * 20) == 0:
            rate = done / (time.perf_counter() - started)
            print(f"  built {done:,} memories ({rate:,.0f}/s)", flush=True)
    await db.writer.fetch_all("PRAGMA wal_checkpoint(TRUNCATE)")
    await db.writer.fetch_all("ANALYZE")
    elapsed = time.perf_counter() - started
    print(f"bulk load: {args.total:,} memories in {elapsed:.0f} s = {args.total / elapsed:,.0f} events/s "
          f"(append_and_apply, {args.batch} events per transaction, {args.loaders} loaders)", flush=True)
    misordered = (await db.reader.fetch_all(
        """SELECT count(*) FROM (
               SELECT recorded_seq, lag(recorded_seq) OVER (PARTITION BY chat_id ORDER BY memory_id) AS previous
               FROM memories) WHERE previous > recorded_seq"""))[0][0]
    assert misordered == 0, "memory ids must follow the log within each chat"


def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * len(ordered))) - 1)]
    return (f"p50 {statistics.median(ordered):.2f} ms, p99 {p99:.2f} ms, max {ordered[-1]:.2f} ms "
            f"(n={len(ordered)})")


async def chat_memory_count(db: Database, chat: str) -> int:
    chat_num = (await db.reader.fetch_all("SELECT chat_num FROM chats WHERE chat_id = ?", (chat,)))[0][0]
    low, high = memory_id_range(chat_num)
    rows = await db.reader.fetch_all(
        "SELECT count(*) FROM memories WHERE memory_id BETWEEN ? AND ?", (low, high)
    )
    return rows[0][0]


async def time_searches(db: Database, chat: str, viewer: str, args: argparse.Namespace) -> tuple[str, float]:
    vocab = Vocabulary(args.seed + 2)
    queries = [vocab.query() for _ in range(args.queries + args.warmup)]
    samples, hits = [], 0
    for i, query in enumerate(queries):
        t0 = time.perf_counter()
        found = await memory.search_memories(db, chat, viewer, query, limit=8)
        if i >= args.warmup:
            samples.append((time.perf_counter() - t0) * 1000)
            hits += len(found)
    return percentiles(samples), hits / len(samples)


async def time_recent(db: Database, chat: str, viewer: str, n: int) -> str:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await memory.recent_memories_for(db, chat, viewer, limit=20)
        samples.append((time.perf_counter() - t0) * 1000)
    return percentiles(samples)


async def time_appends(db: Database, args: argparse.Namespace) -> tuple[float, float]:
    vocab = Vocabulary(args.seed + 3)
    host, guest = cast_of(1, args.characters)
    base = 1_000_000
    t0 = time.perf_counter()
    for i in range(args.appends):
        await append_and_apply(db, "memory_recorded", memory_payload(vocab, chat_id(1), host, guest, base + i))
    sequential = args.appends / (time.perf_counter() - t0)

    async def writer(k: int) -> None:
        for i in range(args.appends // args.writers):
            c = 2 + k
            h, g = cast_of(c, args.characters)
            await append_and_apply(db, "memory_recorded", memory_payload(vocab, chat_id(c), h, g, base + i))

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(k) for k in range(args.writers)))
    concurrent = (args.appends // args.writers) * args.writers / (time.perf_counter() - t0)
    return sequential, concurrent


COPIED_TABLES = {  # table: its primary key (pages of rows are read in its order)
    "characters": ("character_id",),
    "chats": ("chat_id",),
    "story_players": ("chat_id", "player"),
    "memories": ("memory_id",),
    "memory_witnesses": ("memory_id", "witness"),
}


async def copy_rows(source: Path, url: str) -> None:
    """Fill the PostgreSQL database at `url` (already migrated) with the source file's memories."""
    started = time.perf_counter()
    sqlite_db = await open_database(source)
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            for table, key in COPIED_TABLES.items():
                columns = [row["name"] for row in await sqlite_db.reader.fetch_all(f"PRAGMA table_info({table})")]
                order = ", ".join(key)
                after = f"WHERE ({order}) > ({', '.join('?' * len(key))})"
                count, last = 0, None
                async with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    while True:
                        rows = await sqlite_db.reader.fetch_all(
                            f"SELECT {', '.join(columns)} FROM {table} {after if last else ''} ORDER BY {order} LIMIT 20000",
                            last or ())
                        if not rows:
                            break
                        for row in rows:
                            await copy.write_row(tuple(row))
                        count += len(rows)
                        last = tuple(rows[-1][column] for column in key)
                print(f"  copied {count:,} rows of {table}", flush=True)
            await conn.commit()
            await conn.execute("ANALYZE")
    finally:
        await sqlite_db.close()
    print(f"copy: {time.perf_counter() - started:.0f} s", flush=True)


async def main(args: argparse.Namespace) -> None:
    if args.postgres:
        with throwaway_postgres() as server:
            print(postgres_version(server), flush=True)
            args.database_url = server.url()
            await measure(args)
    else:
        await measure(args)


async def measure(args: argparse.Namespace) -> None:
    if args.database_url:
        location: str | Path = args.database_url
    else:
        location = path = Path(args.db)
        if path.exists() and not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
    db = await open_database(location)
    try:
        existing = (await db.reader.fetch_all("SELECT count(*) FROM memories"))[0][0]
        if existing == 0 and args.copy_from:
            await copy_rows(Path(args.copy_from), args.database_url)
        elif existing == 0:
            print(f"building {args.total:,} memories across {args.chats:,} chats (big chat: {args.big:,})", flush=True)
            await build(db, args)
        else:
            print(f"reusing {location} with {existing:,} memories", flush=True)
        big, typical = chat_id(0), chat_id(args.chats // 2)
        host_big, _ = cast_of(0, args.characters)
        host_typical, _ = cast_of(args.chats // 2, args.characters)
        for label, chat, viewer in (("big chat", big, host_big), ("typical chat", typical, host_typical)):
            size = await chat_memory_count(db, chat)
            report, mean_hits = await time_searches(db, chat, viewer, args)
            print(f"search_memories, {label} ({size:,} memories, viewer {viewer}): {report}; "
                  f"{mean_hits:.1f} hits/query", flush=True)
        print(f"recent_memories_for, big chat: {await time_recent(db, big, host_big, args.queries)}", flush=True)
        if args.appends:
            sequential, concurrent = await time_appends(db, args)
            print(f"append_and_apply (one memory_recorded event per transaction): {sequential:,.0f} events/s "
                  f"sequential; {concurrent:,.0f} events/s from {args.writers} concurrent coroutines", flush=True)
    finally:
        await db.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="/tmp/rpbot-bench.sqlite3")
    parser.add_argument("--reuse", action="store_true", help="reuse an existing database instead of rebuilding")
    parser.add_argument("--postgres", action="store_true", help="run on a throwaway PostgreSQL server (the machine's binaries)")
    parser.add_argument("--database-url", default="", help="run on this PostgreSQL database (postgresql://...)")
    parser.add_argument("--copy-from", default="", help="fill an empty PostgreSQL database with this SQLite bench database's rows")
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=10_000, help="memories in the big chat")
    parser.add_argument("--characters", type=int, default=40)
    parser.add_argument("--batch", type=int, default=10_000, help="events per bulk-load transaction")
    parser.add_argument("--loaders", type=int, default=3, help="concurrent bulk-load coroutines (disjoint chats)")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--appends", type=int, default=2_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=20240601)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
