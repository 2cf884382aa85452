"""SIGTERM while a reply is being written: the bot exits cleanly within its grace period,
the partial reply is kept in the engine marked truncated, and the sync token is saved."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest

from tests.operator.conftest import onboard
from tests.support.fake_openai import Reply

pytestmark = [pytest.mark.synapse, pytest.mark.sqlite_files]

SLOW_TEXT = "The tide turns slowly, and the lamps along the quay come on one by one. " * 6


def test_sigterm_mid_reply_exits_cleanly_and_keeps_the_partial_turn(start_bot, fake_openai):
    fake_openai.add_rule(Reply(text=SLOW_TEXT, chunk_size=6, chunk_delay_s=0.4), purpose="narrate")
    fake_openai.add_rule(Reply(text="{}"), has_response_format=True)
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "fake-narrative"})
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.send_text(story, "Tell me about the tide.")
    player.wait_for(
        lambda: any("The tide turns" in text for text in player.final_texts(story, bot.user_id).values()),
        timeout_s=30, what="the reply to start streaming",
    )

    started = time.monotonic()
    assert bot.process.stop(timeout_s=30) == 0, bot.process.log_text()[-3000:]
    assert time.monotonic() - started < 25

    data_dir = bot.process.config_path.parent / "data"
    with closing(sqlite3.connect(data_dir / "engine.sqlite3")) as engine_db:
        rows = engine_db.execute(
            "SELECT text, truncated FROM turns WHERE role = 'assistant' AND superseded_by IS NULL AND text LIKE 'The tide%'"
        ).fetchall()
    assert len(rows) == 1
    text, truncated = rows[0]
    assert text == SLOW_TEXT.strip() or (truncated == 1 and SLOW_TEXT.startswith(text[:20]))
    with closing(sqlite3.connect(data_dir / "adapter.sqlite3")) as adapter_db:
        assert adapter_db.execute("SELECT value FROM kv WHERE key LIKE '%sync%'").fetchone() is not None
