"""Resident memory at start: heavy libraries the bot rarely needs are loaded on first use only."""

from __future__ import annotations

import subprocess
import sys


def test_starting_the_bot_does_not_load_the_date_parser() -> None:
    """dateparser (~12 MB resident) serves only time expressions (`!jump`, planned events, skips by date)."""
    probe = "import sys, adapter.cli, adapter.matrix.bot, core.engine; print('dateparser' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_date_parser_still_reads_story_times() -> None:
    from datetime import datetime

    from core.timeparse import parse_story_time

    assert parse_story_time("tomorrow at 9am", datetime(2026, 3, 1, 18, 0)) == datetime(2026, 3, 2, 9, 0)
