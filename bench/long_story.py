"""Benchmark: a story of 1,000 exchanges, and what the host still has in reach at the end.

Not a test (never run by pytest). Usage:

    .venv/bin/python bench/long_story.py [--exchanges 1000] [--facts 40] [--context 6000] [--seed 7]

The real engine (`Engine.post_turn`, scene closes, the background rolling summaries) with a
scripted fast model (`FakeLLM`, no latency) whose replies are pseudo-word lines and whose
summaries keep the names, places and things they are shown, as a summarizer is asked to.
Scenes of 5 to 300 exchanges (one of 300), each closed before the next.  `--facts` facts are
planted along the way, each a player line naming a person, a place and an object that occur
nowhere else ("My cousin Odalys hid the astrolabe at Verrin."); the player's other lines are
drawn from a Zipfian pseudo-word vocabulary.  At the end, for each fact, a player line that
shares one word with it (its person, place or object in turn) is put to the host
(`Engine.next_prompt`, the exact reply request): does the fact's text reach that prompt?

Printed: the share of facts whose sentence reaches the reply prompt word for word (and the
share whose three words do); the reply prompt's size on every turn (max, the median over
turns 51-150 and 901-1,000, and the median of every hundred turns); the largest background request of each purpose (all against
`--context`); and turn overhead, `post_turn` end to end with the zero-latency model, p50/p99 of
300 turns played on a copy of the story as it stood at exchange 100 and at exchange 1,000.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.engine import Engine  # noqa: E402
from core.llm import FakeLLM  # noqa: E402
from core.services import talk  # noqa: E402
from core.services.tokens import estimate_prompt_tokens  # noqa: E402

HOST = "wren-halloway"
STOPWORDS = "the a and to of i you it in that is was he she for on with as at but my your we".split()
SYLLABLES = "ba be bo ca ce co da de do fa fe fi ga go ha he la le lo ma me mi na ne no ra re ri sa se so ta te to".split()
PEOPLE = ["Odalys", "Brannoc", "Ysolde", "Teague", "Marisol", "Corwen", "Ilaria", "Dunstan", "Perpetua", "Lazlo",
          "Wenna", "Osric", "Thessaly", "Bramwell", "Zenobia", "Caradoc", "Elowen", "Fennick", "Genevra", "Hollis",
          "Ismay", "Jory", "Kestrel", "Lowenna", "Merrick", "Nesta", "Orrin", "Pascoe", "Quenby", "Ruan",
          "Senara", "Tamsyn", "Ulick", "Veryan", "Wystan", "Xanthe", "Yestin", "Zillah", "Aldous", "Briallen"]
PLACES = ["Verrin", "Pennock", "Trewith", "Halsetown", "Morvah", "Lanyon", "Zennor", "Polgooth", "Carnmenellis",
          "Boswarva", "Treen", "Gwithian", "Nancledra", "Porthgwarra", "Rosudgeon", "Sennen", "Towednack", "Ludgvan",
          "Madron", "Crowlas", "Pendeen", "Botallack", "Kenidjack", "Tregeseal", "Bojewyan", "Chyandour", "Gulval",
          "Heamoor", "Lelant", "Marazion", "Nanjizal", "Paul", "Raginnis", "Sancreed", "Trereife", "Vellandreath",
          "Wheal", "Bosullow", "Carfury", "Drift"]
OBJECTS = ["astrolabe", "spyglass", "sextant", "reliquary", "chronometer", "tinderbox", "hourglass", "lodestone",
           "thurible", "quadrant", "almanac", "tankard", "whetstone", "pennywhistle", "snuffbox", "signet",
           "scrimshaw", "barometer", "censer", "flagon", "gimlet", "harpoon", "inkhorn", "jerkin", "kettledrum",
           "lantern-clock", "marlinspike", "nutcracker", "oilskin", "pewter", "quoit", "rushlight", "sampler",
           "trivet", "usquebaugh", "vellum", "windlass", "yardarm", "zither", "abacus"]
KEEP = set(PEOPLE) | set(PLACES) | set(OBJECTS)
TIMED_TURNS = 300


def vocabulary(rng: random.Random, size: int = 3000) -> tuple[list[str], list[float]]:
    words = list(dict.fromkeys("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
                               for _ in range(size * 2)))[:size]
    cumulative, total = [], 0.0
    for rank in range(1, len(words) + 1):
        total += 1 / rank ** 1.07
        cumulative.append(total)
    return words, cumulative


WORDS, CUMULATIVE = vocabulary(random.Random(1))


def filler(rng: random.Random, n: int) -> str:
    words = [rng.choice(STOPWORDS) if i % 3 == 2 else rng.choices(WORDS, cum_weights=CUMULATIVE)[0] for i in range(n)]
    return " ".join(words).capitalize() + "."


def kept_words(messages, limit: int) -> list[str]:
    """The names, places and things a request shows, in order (what a summarizer is asked to keep)."""
    text = "\n".join(m["content"] for m in messages[1:])
    return list(dict.fromkeys(w for w in re.findall(r"[\w-]+", text) if w in KEEP))[-limit:]


def scripted_model() -> FakeLLM:
    def reply(messages) -> str:
        rng = random.Random(messages[-1]["content"])
        return "*Wren nods slowly.* " + filler(rng, 24)

    def summary(messages) -> str:
        kept = kept_words(messages, 12)
        return "I listened and kept watch." + (f" I remember {', '.join(kept)}." if kept else "")

    return FakeLLM({
        "narrate": reply, "scene_close": summary, "scene_part": summary,
        "story_so_far": lambda m: "So far I have met many people." + (
            f" I remember {', '.join(kept_words(m, 20))}." if kept_words(m, 20) else ""),
        "threads": {}, "lifecycle": {}, "relationship": {"affinity": 0, "trust": 0, "why": ""},
        "addressee": {"speaker": HOST, "confidence": "high"},
    })


def scene_lengths(total: int, rng: random.Random) -> list[int]:
    """Scenes of 5 to 300 exchanges adding up to `total`, one of them 300 (third)."""
    lengths: list[int] = []
    while sum(lengths) < total:
        lengths.append(300 if len(lengths) == 2 else rng.choice([5, 8, 12, 20, 30, 45, 60, 90]))
    lengths[-1] -= sum(lengths) - total
    return [n for n in lengths if n > 0]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def time_turns(path: Path, chat_id: str, context: int, copy_to: Path, turns: int = TIMED_TURNS) -> list[float]:
    """`turns` turns on a copy of the story's database: each `post_turn`'s time, in ms."""
    with sqlite3.connect(path) as source, sqlite3.connect(copy_to) as target:
        source.backup(target)
    engine = await Engine.open(copy_to, scripted_model(), budget_tokens=context)
    rng, times = random.Random(99), []
    try:
        for n in range(turns):
            started = time.perf_counter()
            async for _ in engine.post_turn(chat_id, filler(rng, 14), f"$timed{n}"):
                pass
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await engine.close()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=1000)
    parser.add_argument("--facts", type=int, default=40)
    parser.add_argument("--context", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sizes: list[int] = []
    assemble = talk.assemble_prompt

    async def measured(*a, **k):
        report = await assemble(*a, **k)
        sizes.append(estimate_prompt_tokens(report.messages))
        return report

    talk.assemble_prompt = measured  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "engine.sqlite3"
        fake = scripted_model()
        engine = await Engine.open(path, fake, budget_tokens=args.context)
        chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
        await engine.greeting(chat)
        plant_at = sorted(rng.sample(range(args.exchanges - 20), args.facts))
        facts = {at: (PEOPLE[i], PLACES[i], OBJECTS[i]) for i, at in enumerate(plant_at)}
        timings: dict[int, list[float]] = {}
        n, started = 0, time.monotonic()
        for length in scene_lengths(args.exchanges, rng):
            for _ in range(length):
                if n in facts:
                    who, where, what = facts[n]
                    text = f"My cousin {who} hid the {what} at {where}."
                else:
                    text = filler(rng, rng.randint(6, 30))
                async for _ in engine.post_turn(chat, text, f"${n}"):
                    pass
                n += 1
                if n in (100, args.exchanges):
                    await engine.pipeline.summary_jobs.settle(chat)
                    timings[n] = await time_turns(path, chat, args.context, Path(workdir) / f"copy{n}.sqlite3")
            await engine.close_scene(chat)
        built = time.monotonic() - started
        await engine.pipeline.summary_jobs.settle(chat)
        turn_sizes = list(sizes)

        exact = words = 0
        misses: list[str] = []
        for index, (who, where, what) in enumerate(facts.values()):
            probe = [f"What do you know about {who}?", f"Have you ever been to {where}?",
                     f"Where is the {what} now?"][index % 3]
            prompt = await engine.next_prompt(chat, probe)
            text = "\n".join(m["content"] for m in prompt.messages).replace(probe, "")
            found = f"My cousin {who} hid the {what} at {where}." in text
            exact += found
            words += all(word in text for word in (who, where, what))
            if not found:
                misses.append(f"{probe!r} (planted at exchange {plant_at[index]})")
        background: dict[str, int] = {}
        for call in fake.calls:
            if call.purpose != "narrate":
                background[call.purpose] = max(background.get(call.purpose, 0), estimate_prompt_tokens(call.messages))
        await engine.close()

    print(f"story: {args.exchanges} exchanges, {len(scene_lengths(args.exchanges, random.Random(args.seed)))} scenes, "
          f"{args.facts} facts, context {args.context} tokens; built in {built:.0f} s")
    print(f"facts reaching the reply prompt: {exact}/{len(facts)} word for word ({100 * exact / len(facts):.1f} %), "
          f"{words}/{len(facts)} with their three words ({100 * words / len(facts):.1f} %)")
    if misses:
        print("missed: " + "; ".join(misses))
    early, late = turn_sizes[50:150], turn_sizes[args.exchanges - 100:args.exchanges]
    print(f"reply prompt tokens: max {max(turn_sizes)} (budget {args.context}); median turns 51-150 "
          f"{statistics.median(early):.0f}, turns {args.exchanges - 99}-{args.exchanges} {statistics.median(late):.0f}")
    blocks = [f"{start + 1}-{start + 100}: {statistics.median(turn_sizes[start:start + 100]):.0f}"
              for start in range(0, args.exchanges, 100) if turn_sizes[start:start + 100]]
    print("median reply prompt tokens per 100 turns: " + ", ".join(blocks))
    print("largest background request per purpose (tokens): "
          + ", ".join(f"{purpose} {size}" for purpose, size in sorted(background.items())))
    for at, times in timings.items():
        print(f"turn overhead at exchange {at}: p50 {percentile(times, 50):.1f} ms, p99 {percentile(times, 99):.1f} ms "
              f"({len(times)} turns on a copy)")
    if len(timings) == 2:
        first, last = (percentile(t, 99) for t in timings.values())
        print(f"p99 growth from exchange 100 to {args.exchanges}: {last / first:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
