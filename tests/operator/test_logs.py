"""Structured logs: one line per event, JSON or text, room and chat ids, no message text at INFO."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest

from adapter.logs import setup_logging
from tests.operator.conftest import onboard
from tests.support.bot_process import REPO_ROOT, BotProcess, write_config
from tests.support.synapse import SynapseServer

SECRET_LINE = "the owl knows where the silver key is buried"


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_room_and_chat(restore_logging):
    stream = io.StringIO()
    setup_logging("INFO", "json", stream=stream)
    logging.getLogger("rpbot.test").info("turn started", extra={"room_id": "!r:hs", "chat_id": "c1"})
    logging.getLogger("rpbot.test").debug("hidden at INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("rpbot.test").exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["message"] == "turn started" and first["room_id"] == "!r:hs" and first["chat_id"] == "c1"
    assert first["level"] == "INFO" and first["logger"] == "rpbot.test" and "time" in first
    assert "RuntimeError: boom" in second["exc_info"]


def test_text_lines_put_the_ids_after_the_message(restore_logging):
    stream = io.StringIO()
    setup_logging("DEBUG", "text", stream=stream)
    logging.getLogger("rpbot.test").warning("sync failed", extra={"room_id": "!r:hs"})
    assert stream.getvalue().rstrip().endswith("WARNING rpbot.test: sync failed room=!r:hs")


def test_bad_level_or_format_is_refused():
    with pytest.raises(ValueError):
        setup_logging("LOUD", "text")
    with pytest.raises(ValueError):
        setup_logging("INFO", "xml")


class JsonLoggingBot(BotProcess):
    """The real `rpbot run` at INFO with `--log-format json` (BotProcess runs at DEBUG, as text)."""

    def start(self, timeout_s: float = 60.0) -> JsonLoggingBot:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "adapter.cli", "--log-level", "INFO", "--log-format", "json", "run", "--config", str(self.config_path)],
                cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        self.wait_for_log("ready as", timeout_s)
        return self


@pytest.mark.synapse
def test_the_bot_logs_json_at_info_without_message_text(synapse: SynapseServer, tmp_path):
    from tests.adapter.matrix.conftest import RunningBot

    account = synapse.register("rpbot")
    config = write_config(
        tmp_path / "rpbot.toml", homeserver=synapse.url, user_id=account.user_id, password=account.password,
        allowed_users=["@player-*:localhost"], data_dir=tmp_path / "data",
    )
    process = JsonLoggingBot(config, tmp_path / "rpbot.log").start()
    try:
        bot = RunningBot(process, account.user_id, synapse)
        player = bot.player()
        _, _, story = onboard(bot, player)
        player.send_text(story, SECRET_LINE)
        process.wait_for_log("reply delivered", 60)
    finally:
        assert process.stop() == 0, process.log_text()[-3000:]
    entries = [json.loads(line) for line in process.log_text().splitlines() if line.strip()]
    assert SECRET_LINE not in process.log_text()
    started = [e for e in entries if e["message"] == "turn started"]
    assert started and started[0]["room_id"] == story and started[0]["chat_id"]
    assert any(e["message"].startswith("created space") and e["user_id"] == player.user_id for e in entries)
