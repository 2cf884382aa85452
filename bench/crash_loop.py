"""The long crash loop: SIGKILL the bot at random moments, many times, and check nothing was lost.

Runs the scenario of `tests/reliability/test_crash_loop.py` (a player talking in three story
rooms, a newcomer onboarding during a kill) on a throwaway local Synapse, with `--kills` kills
(50 by default). Prints the result as JSON; exit status 0 when every check held. Not a test:

    .venv/bin/python bench/crash_loop.py --kills 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import machine, throwaway_homeserver
from tests.reliability.scenarios import run_crash_loop
from tests.support.fake_openai import FakeOpenAIServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=50)
    args = parser.parse_args()
    with throwaway_homeserver("rpbot-crash-loop-") as (work, server), FakeOpenAIServer() as fake:
        (work / "bot").mkdir()
        result = run_crash_loop(server, fake, work / "bot", kills=args.kills, seed=args.seed)
    summary = asdict(result)
    summary["restart_seconds"] = {
        "median": round(statistics.median(result.restart_seconds), 2) if result.restart_seconds else None,
        "max": round(max(result.restart_seconds), 2) if result.restart_seconds else None,
    }
    summary["ok"] = result.ok
    summary["machine"] = machine()
    print(json.dumps(summary, indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
