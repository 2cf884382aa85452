"""Benchmark: how much of each reply prompt a model server's prefix cache can reuse.

Not a test; run by hand (figures in bench/RESULTS.md):

    .venv/bin/python bench/prompt_prefix.py --turns 200

Drives the real Engine (a fresh database, the built-in characters) through a scripted
story of `--turns` player lines, once with one character, once with two (the player
talks to one of them for a run of lines, then to the other, naming them), and once with
three characters and two players (the third character invited after the opening, the second
player joining; the players take turns, and talk to one character for a run of lines, then to
the next), with a scene closed and time skipped now and then.  The model is a scripted fake whose replies vary in
length (40-160 words) and words.  Every reply prompt is rendered the way a chat template
sends it (role markers, then content, message by message) and compared with the previous
reply prompt: the share of the prompt that is an identical prefix of the previous one.
Prints the median, the 10th percentile and the share of turns at or above 85 %, and the
same against the same speaker's previous prompt (what a server that keeps more than one
cached prefix, like vLLM's automatic prefix caching, reuses).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.engine import Engine
from core.llm import FakeLLM
from core.llm.base import ChatMessage
from core.services.addressee import AddresseeDecision
from core.services.plot import LifecycleChanges, NewThread, ThreadChanges

HOST, GUEST, THIRD = "wren-halloway", "odile-marchetti", "tamsin-vale"
OWNER, FRIEND = "@bench:localhost", "@friend:localhost"
CALLED = {"Wren": HOST, "Odile": GUEST, "Tamsin": THIRD}
RUN = 12  # lines the players say to one character before they turn to the next
WORDS = """the lamp salt tide harbour rope lantern gull storm keeper boat letter map key bell fog
rock stair window light tea bread coat boots knife ledger oil wick sea wind rain night morning
quiet old cold warm careful slow bright low whispered laughed frowned listened watched turned""".split()


def sentence(rng: random.Random, words: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return body[0].upper() + body[1:] + "."


def render(messages: list[ChatMessage]) -> str:
    """The prompt as a chat template lays it out (what a prefix cache compares)."""
    return "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in messages)


def shared_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    low, high = 0, n
    while low < high:  # binary search on the first difference (strings are long)
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def fake_model(seed: int) -> FakeLLM:
    rng = random.Random(seed)

    def reply(_messages: list[ChatMessage]) -> str:
        return " ".join(sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(4, 10)))

    return FakeLLM({
        "narrate": reply,
        "skip": lambda _m: "Time passes over the rock; the lamp turns and the tide goes out and comes back.",
        "scene_close": lambda _m: "We talked by the lamp about the storm, the boat and the letter.",
        "threads": ThreadChanges(open=[NewThread(title="The late supply boat", summary="It has not come.")]),
        "lifecycle": LifecycleChanges(),
        "addressee": lambda m: AddresseeDecision(speaker=next(
            (cid for name, cid in CALLED.items() if name in m[-1]["content"].rsplit("latest line:", 1)[-1]), HOST)),
    }, strict=True)


async def story(turns: int, characters: int, players: int, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    fake = fake_model(seed)
    names = list(CALLED)[:characters]
    with tempfile.TemporaryDirectory(prefix="rpbot-prefix-") as tmp:
        engine = await Engine.open(Path(tmp) / "engine.sqlite3", fake)
        try:
            chat = await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST if characters > 1 else None)
            await engine.greeting(chat.chat_id)
            if characters > 2:
                async for _ in engine.invite_character(chat.chat_id, THIRD):
                    pass
            if players > 1:
                await engine.join_player(chat.chat_id, FRIEND, "Quill")
            for n in range(turns):
                talking_to = names[(n // RUN) % len(names)]
                line = sentence(rng, rng.randint(6, 24))
                if characters > 1:
                    line = f"{talking_to}, {line[0].lower()}{line[1:]}"
                player = FRIEND if players > 1 and n % 2 else None
                async for _ in engine.post_turn(chat.chat_id, line, f"$line-{n}", player=player):
                    pass
                if n % 50 == 49:
                    await engine.close_scene(chat.chat_id)
                if n % 70 == 69:
                    await engine.skip(chat.chat_id, timedelta(hours=3))
        finally:
            await engine.close()
    prompts = [(c.messages[0]["content"][:80], render(c.messages)) for c in fake.calls_for("narrate")]
    vs_previous, vs_same_speaker = [], []
    last_by_speaker: dict[str, str] = {}
    for (_, text), (_, previous) in zip(prompts[1:], prompts[:-1], strict=True):
        vs_previous.append(shared_prefix(text, previous) / len(text))
    for speaker, text in prompts:
        if speaker in last_by_speaker:
            vs_same_speaker.append(shared_prefix(text, last_by_speaker[speaker]) / len(text))
        last_by_speaker[speaker] = text
    return vs_previous, vs_same_speaker


def report(name: str, shares: list[float]) -> None:
    ordered = sorted(shares)
    p10 = ordered[len(ordered) // 10]
    at_least = sum(s >= 0.85 for s in shares) / len(shares)
    print(f"  {name:<28} median {statistics.median(shares):6.1%}  p10 {p10:6.1%}  "
          f"turns >= 85%: {at_least:6.1%}  ({len(shares)} prompts)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for characters, players, title in ((1, 1, "one character"), (2, 1, "two characters"),
                                       (3, 2, "three characters and two players")):
        vs_previous, vs_same = await story(args.turns, characters, players, args.seed)
        print(f"{title}, {args.turns} player lines:")
        report("vs the previous prompt", vs_previous)
        report("vs the speaker's previous", vs_same)


if __name__ == "__main__":
    asyncio.run(main())
