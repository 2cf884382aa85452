"""What the speaker's face costs: events per exchange and time to first words, with and without a switch.

Before a character's line the bot's member event in the story room must carry that character's
name and portrait; in a group scene that is one state event more whenever the speaker changes,
counted against the bot's message rate limit. This script measures, against the real `rpbot run`
and one local Synapse, three kinds of exchange:

- one character: the story room's host answers every line (never a switch);
- two characters, same speaker: every line names Wren, who answers (no switch);
- two characters, alternating: lines name Odile and Wren in turn (a switch before every reply).

For each exchange the player's client records the time from sending the line to the first new
bot message (first text) and to the reply reading complete, and counts the bot's events in the
room: messages (the reply and its streamed edits) and member events (switches). The fake model
waits --ttft before its first token and then streams for about 2.75 s, so a reply is one
message and a few edits, as with a real model.

Everything runs twice on the same homeserver: first with Synapse's stock rate limits (as a player's
homeserver has them; before each kind the bot's bucket is left to refill, and the player pauses
--gap seconds between lines, as a person reading and typing), then with the bot's limits lifted
the way an operator does it (`POST /_synapse/admin/v1/users/<bot>/override_ratelimit`). Not a
test: run it by hand.

    .venv/bin/python bench/faces.py --lines 8 --gap 12
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapter.devserver import LocalHomeserver
from bench.measure import machine
from core.llm.roles import without_notes
from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.support.bot_process import BotProcess, write_config
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.fake_openai_models import RecordedRequest
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer

FILLER = "The lamp gutters; somewhere below, the sea keeps its own counsel. " * 3
REFILL_S = 55  # the stock bucket (burst 10 at 0.2 a second) refills in 50 s


def answer(request: RecordedRequest) -> str:
    said = without_notes(request.last_user_message).strip().split("\n\n")[-1]
    return f"*considers this* {FILLER}You said: {said[-40:]}"


def measure(player: MatrixUser, room: str, bot_id: str, line: str, end: str) -> tuple[float, float, int, int]:
    """(seconds to the first new bot message, seconds to the complete reply, messages, switches) for one exchange."""
    player.sync_once(timeout_ms=0)
    seen = len(player.timeline.get(room, []))
    started = time.monotonic()
    player.send_text(room, line)
    first = final = None
    while final is None and time.monotonic() - started < 180:
        player.sync_once(timeout_ms=100)
        new = [e for e in player.timeline.get(room, [])[seen:] if e.get("sender") == bot_id]
        if first is None and any(e["type"] == "m.room.message" for e in new):
            first = time.monotonic() - started
        texts = player.final_texts(room, bot_id)
        if any(texts.get(e["event_id"], "").endswith(end) for e in new if e["type"] == "m.room.message"):
            final = time.monotonic() - started
    if first is None or final is None:
        raise RuntimeError(f"no complete answer to {line!r}")
    time.sleep(1.0)  # the typing notice's end, anything trailing
    player.sync_once(timeout_ms=0)
    new = [e for e in player.timeline.get(room, [])[seen:] if e.get("sender") == bot_id]
    messages = sum(1 for e in new if e["type"] == "m.room.message")
    switches = sum(1 for e in new if e["type"] == "m.room.member")
    return first, final, messages, switches


def run_kind(player: MatrixUser, room: str, bot_id: str, lines: int, gap_s: float, addressee: Callable[[int], str]) -> list[tuple]:
    samples = []
    for index in range(lines):
        line = f"{addressee(index)}what happened here? (line {index})."
        samples.append(measure(player, room, bot_id, line, f"(line {index})."))
        time.sleep(gap_s)
    return samples


def lift_limits(synapse: SynapseServer, bot_id: str) -> None:
    response = httpx.post(
        f"{synapse.url}/_synapse/admin/v1/users/{bot_id}/override_ratelimit",
        json={"messages_per_second": 0, "burst_count": 0},
        headers={"Authorization": f"Bearer {synapse.admin.access_token}"},
        timeout=10,
    )
    response.raise_for_status()


def report(title: str, results: dict[str, list[tuple]]) -> None:
    print(f"\n{title}")
    print("| exchange | events per exchange (messages + switches) | first text p50 | first text p95 | complete p50 |")
    print("| --- | --- | --- | --- | --- |")
    for kind, samples in results.items():
        firsts = [s[0] for s in samples]
        finals = [s[1] for s in samples]
        messages = statistics.mean(s[2] for s in samples)
        switches = statistics.mean(s[3] for s in samples)
        p95 = statistics.quantiles(firsts, n=20, method="inclusive")[18] if len(firsts) > 1 else firsts[0]
        print(f"| {kind} | {messages + switches:.2f} ({messages:.2f} + {switches:.2f}) | {statistics.median(firsts):.2f} s "
              f"| {p95:.2f} s | {statistics.median(finals):.2f} s |")


def main(lines: int, gap_s: float, ttft: float) -> None:
    with tempfile.TemporaryDirectory(prefix="rpbot-faces-") as tmp, FakeOpenAIServer() as llm:
        work = Path(tmp)
        llm.default_reply = Reply(text=answer, first_token_delay_s=ttft, chunk_size=24, chunk_delay_s=0.25)
        homeserver = LocalHomeserver(work / "synapse", relaxed_rate_limits=False)  # Synapse's own limits
        homeserver.start()
        bot = None
        try:
            synapse = SynapseServer(homeserver)
            account = synapse.register("rpbot")
            config = write_config(work / "rpbot.toml", homeserver=synapse.url, user_id=account.user_id, password=account.password,
                                  allowed_users=["@player-*:localhost"], data_dir=work / "data",
                                  llm={"provider": "openai", "base_url": llm.base_url, "narrative_model": "m", "timeout_s": 60})
            bot = BotProcess(config, work / "rpbot.log").start()
            running = RunningBot(bot, account.user_id, synapse)
            player = running.player()
            space, lobby, one = onboard(running, player, timeout_s=180)
            player.send_text(lobby, "!new wren with odile")
            group = player.wait_for(lambda: next((r["room_id"] for r in player.hierarchy(space) if "&" in r.get("name", "")), None),
                                    timeout_s=180, what="the two-character story")
            player.join(group)
            kinds = {
                "one character (no switch)": (one, lambda i: ""),
                "two characters, same speaker (no switch)": (group, lambda i: "Wren, "),
                "two characters, alternating (a switch each)": (group, lambda i: "Odile, " if i % 2 == 0 else "Wren, "),
            }
            stock: dict[str, list[tuple]] = {}
            for kind, (room, addressee) in kinds.items():
                if kind.startswith("two characters, same"):
                    measure(player, group, account.user_id, "Wren, a word first. (warm-up).", "(warm-up).")  # Wren is the speaker now
                time.sleep(REFILL_S)
                stock[kind] = run_kind(player, room, account.user_id, lines, gap_s, addressee)
            lift_limits(synapse, account.user_id)
            lifted: dict[str, list[tuple]] = {}
            for kind, (room, addressee) in kinds.items():
                if kind.startswith("two characters, same"):
                    measure(player, group, account.user_id, "Wren, a word first. (warm-up).", "(warm-up).")
                lifted[kind] = run_kind(player, room, account.user_id, lines, 1.0, addressee)
        finally:
            if bot is not None:
                bot.stop()
            homeserver.stop()

    print(f"machine: {machine()}")
    print(f"{lines} lines per kind; model: {ttft:.2f} s to its first token, then about 2.75 s of streaming; player's pause: {gap_s:.0f} s")
    report("Synapse's stock rate limits (rc_message 0.2/s, burst 10)", stock)
    report("the bot's limits lifted (admin override_ratelimit)", lifted)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=8)
    parser.add_argument("--gap", type=float, default=12.0, help="seconds the player pauses between lines on stock limits")
    parser.add_argument("--ttft", type=float, default=0.5, help="the fake model's time to first token")
    args = parser.parse_args()
    main(args.lines, args.gap, args.ttft)
