"""Time from a player's line to the character's first words, rpbot against a minimal nio bot.

One local Synapse (relaxed limits), one OpenAI-compatible fake whose every call takes
--ttft seconds to its first token, the real `rpbot run` process and bench/baseline_bot.py
(receive, one LLM call, reply). The same script of lines goes to: rpbot in a
one-character story, rpbot in a two-character story (where every fifth line names the
character it is for, and the others go on with the last speaker), and the baseline bot. Reports
send -> first visible text and send -> final text, p50/p95, and the ratio to the
baseline. Not a test: run it by hand on a quiet machine.

    .venv/bin/python bench/latency.py --lines 20 --ttft 0.5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.measure import machine, throwaway_homeserver
from core.llm.roles import without_notes
from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.support.bot_process import BotProcess, write_config
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.fake_openai_models import RecordedRequest
from tests.support.matrix_user import MatrixUser


def answer(request: RecordedRequest) -> str:
    """The model's reply: about the player's newest line (the last paragraph of what it said)."""
    said = without_notes(request.last_user_message).strip().split("\n\n")[-1]
    return f"*nods* You said: {said[-60:]}"


def measure(player: MatrixUser, room: str, bot_id: str, line: str, final_suffix: str) -> tuple[float, float]:
    """(seconds to the first new bot message, seconds until a bot message reads complete)."""
    before = set(player.final_texts(room, bot_id))
    started = time.monotonic()
    player.send_text(room, line)
    first = final = None
    while final is None and time.monotonic() - started < 60:
        player.sync_once(timeout_ms=200)
        texts = player.final_texts(room, bot_id)
        new = {event_id: text for event_id, text in texts.items() if event_id not in before}
        if new and first is None:
            first = time.monotonic() - started
        if any(text.endswith(final_suffix) for text in new.values()):
            final = time.monotonic() - started
    if first is None or final is None:
        raise RuntimeError(f"no complete answer to {line!r} in {room}")
    return first, final


def percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return statistics.median(values), cuts[18]


def main(lines: int, ttft: float) -> None:
    with throwaway_homeserver("rpbot-latency-") as (work, synapse), FakeOpenAIServer() as llm:
        llm.default_reply = Reply(text=answer, first_token_delay_s=ttft, chunk_size=12, chunk_delay_s=0.01)
        baseline = None
        bot = None
        try:
            account = synapse.register("rpbot")
            config = write_config(work / "rpbot.toml", homeserver=synapse.url, user_id=account.user_id,
                                  password=account.password, allowed_users=["@player-*:localhost"], data_dir=work / "data",
                                  llm={"provider": "openai", "base_url": llm.base_url, "narrative_model": "m", "timeout_s": 60})
            bot = BotProcess(config, work / "rpbot.log").start()
            running = RunningBot(bot, account.user_id, synapse)
            player = running.player()
            space, lobby, one_character = onboard(running, player)
            player.send_text(lobby, "!new wren with odile")
            two_characters = player.wait_for(
                lambda: next((r["room_id"] for r in player.hierarchy(space) if r.get("name") == "Wren Halloway & Captain Odile Marchetti"), None),
                timeout_s=60, what="the two-character story")
            player.join(two_characters)

            base_account = synapse.register("baseline")
            baseline = subprocess.Popen([sys.executable, str(REPO / "bench" / "baseline_bot.py"), synapse.url, base_account.user_id,
                                         base_account.password, llm.base_url], stdout=subprocess.PIPE, text=True)
            assert baseline.stdout is not None and "ready" in baseline.stdout.readline()
            base_room = player.create_room(invite=[base_account.user_id])
            player.wait_for(lambda: player.members(base_room).get(base_account.user_id) == "join", what="the baseline bot to join")

            results: dict[str, list[tuple[float, float]]] = {"baseline bot": [], "rpbot, one character": [], "rpbot, two characters": []}
            for index in range(lines):
                line = f"The lamp flickers and I ask what happened here (line {index})."
                end = f"(line {index})."
                results["baseline bot"].append(measure(player, base_room, base_account.user_id, line, end))
                results["rpbot, one character"].append(measure(player, one_character, account.user_id, line, end))
                # Lines a player writes in a group scene: now and then one names who it is for, the
                # rest go on with whoever spoke last (no routing call for either).
                named = f"{'Odile' if index % 10 == 0 else 'Wren'}, {line}" if index % 5 == 0 else line
                results["rpbot, two characters"].append(
                    measure(player, two_characters, account.user_id, named, end))
        finally:
            if baseline is not None:
                baseline.terminate()
            if bot is not None:
                bot.stop()

    print(f"machine: {machine()}")
    print(f"{lines} lines per case, LLM time to first token {ttft:.2f}s per call")
    base_first = percentiles([first for first, _ in results["baseline bot"]])
    for name, samples in results.items():
        first_p50, first_p95 = percentiles([first for first, _ in samples])
        final_p50, final_p95 = percentiles([final for _, final in samples])
        print(f"{name:24s} first text p50 {first_p50:.3f}s p95 {first_p95:.3f}s | final text p50 {final_p50:.3f}s p95 {final_p95:.3f}s"
              f" | first-text ratio to baseline p50 {first_p50 / base_first[0]:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--ttft", type=float, default=0.5, help="the fake model's time to first token, per call")
    args = parser.parse_args()
    main(args.lines, args.ttft)
