"""Where a bot process's time goes: py-spy sampling it during a step, and a summary of the samples."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

# Where a stack's sample goes: the first rule whose marker is in the stack (py-spy raw lines,
# "frame;frame;...;leaf count", each frame "function (path:line)"). Waiting counts as idle.
PROFILE_CATEGORIES = (
    ("idle: aiosqlite worker threads waiting", "aiosqlite/core.py:59)"),
    ("idle: event loop in epoll", "EpollSelector.select"),
    ("nio: receiving and parsing syncs", "AsyncClient.sync ("),
    ("nio: receiving and parsing syncs", "receive_response"),
    ("model's SSE stream", "openai_client.py"),
    ("sending to Matrix (outgoing.py, nio, aiohttp)", "outgoing.py"),
    ("SQL in aiosqlite's threads", "aiosqlite/core.py:63)"),
    ("SQL through psycopg (on the event loop)", "psycopg/"),
    ("engine Python (core/)", "(core/"),
    ("rendering markdown", "render.py"),
    ("dispatcher", "dispatcher.py"),
)


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy (the `bench` extra) sampling `pid` at 100 Hz into `output` (raw stacks) until stopped."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([py_spy, "record", "--nonblocking", "-r", "100", "-f", "raw", "-p", str(pid), "-o", str(output)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(2)
    profiler.wait(30)


def where_time_goes(raw_profile: Path, top: int = 12) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's raw output: (samples, % per category, % of the top own-time frames)."""
    categories: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw_profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        own[stack.rsplit(";", 1)[-1]] += count
        category = next((name for name, marker in PROFILE_CATEGORIES if marker in stack),
                        "event loop, aiohttp/httpx plumbing, other")
        categories[category] += count
    scale = 100 / max(1, total)
    return (total, [(c, n * scale) for c, n in categories.most_common()], [(f, n * scale) for f, n in own.most_common(top)])


def print_profiles(directory: Path) -> None:
    """The summary of every step's profile in `directory`, in step order."""
    for raw in sorted(directory.glob("step-*.txt"), key=lambda p: (int(p.name.split("-")[1]), p.name)):
        samples, categories, own = where_time_goes(raw)
        print(f"\nprofile {raw.name} ({samples} samples): where the time goes")
        for name, share in categories:
            print(f"  {share:5.1f}%  {name}")
        print("  top frames by own time:")
        for frame, share in own:
            print(f"  {share:5.1f}%  {frame}")
