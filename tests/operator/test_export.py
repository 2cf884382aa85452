"""`rpbot export` against a real Synapse and the real bot (offline demo model): a played story as Markdown."""

from __future__ import annotations

import pytest

from tests.adapter.matrix.test_story_commands_e2e import ask
from tests.operator.conftest import onboard, rpbot

pytestmark = pytest.mark.synapse

LINE = "I walk down to the harbour and look for the missing maps."


def test_export_by_platform_or_engine_chat_id_while_the_bot_runs(start_bot, tmp_path):
    bot = start_bot()
    player = bot.player()
    _, _, story = onboard(bot, player)
    greeting = player.wait_for(lambda: list(player.final_texts(story, bot.user_id).values()), what="the greeting")[0]
    player.send_text(story, LINE)
    ask(player, story, bot.user_id, "!scene close", "The scene closes", timeout_s=60)  # runs after the reply
    lines = {e["event_id"] for e in player.messages_from(story, bot.user_id) if e["content"].get("msgtype") == "m.text"}
    replies = [text for event_id, text in player.final_texts(story, bot.user_id).items() if event_id in lines and text != greeting]
    identity = player.state_event(story, "org.rpbot.room")

    by_platform = rpbot("export", "--config", bot.process.config_path, "--chat", identity["platform_chat_id"])

    assert by_platform.returncode == 0, by_platform.stderr
    markdown = by_platform.stdout
    assert markdown.startswith("# ") and "## Cast" in markdown and "## Story" in markdown
    assert greeting.splitlines()[0][:60] in markdown
    persona = player.user_id[1:].split(":", 1)[0]  # the display name Synapse gives a new account
    assert f"**{persona}:** {LINE}" in markdown
    assert markdown.index(f"**{persona}:** {LINE}") < markdown.index(replies[0].splitlines()[0][:60])
    assert "#### How they remember it" in markdown
    assert "!scene close" not in markdown  # commands are not story turns

    out = tmp_path / "story.md"
    by_engine_id = rpbot("export", "--config", bot.process.config_path, "--chat", identity["chat_id"], "--out", out)
    assert by_engine_id.returncode == 0, by_engine_id.stderr
    assert out.read_text() == markdown


def test_export_of_an_unknown_chat_fails(start_bot):
    bot = start_bot()
    result = rpbot("export", "--config", bot.process.config_path, "--chat", "mx-999")
    assert result.returncode == 1 and "no story with chat id or platform chat id 'mx-999'" in result.stderr
