"""Load: many players talking at once with a fake model of realistic latency; reply latency p50/p99.

Runs the scenario of `tests/reliability/test_load.py` at full size (20 players x 3 story rooms,
3 rounds of one line per room) on a throwaway local Synapse with relaxed rate limits. The fake
model waits 0.8 s for the first token, then streams ~70 characters in 6 chunks 50 ms apart.
Prints a JSON summary; exit status 0 when every line got exactly one complete reply. Not a test:

    .venv/bin/python bench/load.py --users 20 --rooms 3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import machine, throwaway_homeserver
from tests.reliability.load import run_load
from tests.support.fake_openai import FakeOpenAIServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rooms", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--first-token-delay", type=float, default=0.8)
    args = parser.parse_args()
    with throwaway_homeserver("rpbot-load-") as (work, server), FakeOpenAIServer() as fake:
        (work / "bot").mkdir()
        result = run_load(server, fake, work / "bot", users=args.users, rooms_per_user=args.rooms,
                          rounds=args.rounds, first_token_delay_s=args.first_token_delay)
    summary = result.summary()
    summary["machine"] = machine()
    print(json.dumps(summary, indent=2))
    return 0 if not result.errors and not result.wrong_lines and summary["replies_complete"] == summary["lines_sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
