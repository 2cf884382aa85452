"""Fixtures for the operator-tool tests: the real-Synapse bot fixtures, and running `rpbot` as a command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.adapter.matrix.conftest import onboard as onboard
from tests.adapter.matrix.conftest import start_bot as start_bot
from tests.support.bot_process import REPO_ROOT


def rpbot(*args: str | Path, timeout_s: float = 90, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `rpbot ARGS...` (as `python -m adapter.cli`) and return the finished process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "adapter.cli", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )
