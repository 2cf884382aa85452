"""The bot with its stories in PostgreSQL (`[storage] database_url`), end to end against a real
Synapse and the real `rpbot run` process: a player is onboarded, says a line and gets the reply,
and the story and the bot's cache are in PostgreSQL, not in files in data_dir; `rpbot export`
reads the story from there."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql

from adapter.matrix.store_schema import adapter_schema_name
from tests.adapter.matrix.conftest import onboard
from tests.operator.conftest import rpbot
from tests.support.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.synapse


def test_a_story_played_through_matrix_lives_in_postgresql(start_bot, fake_openai: FakeOpenAIServer, postgres_url: str,
                                                           tmp_path: Path) -> None:
    fake_openai.add_rule(Reply(text="*Mira folds her map.* The road ends at the sea."), purpose="narrate")
    llm = {"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "story-model", "timeout_s": 10}
    bot = start_bot(llm=llm, database_url=postgres_url)
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.wait_for(lambda: player.final_texts(story, bot.user_id), what="the greeting")
    player.send_text(story, "Where does this road lead?")

    def reply_arrived() -> list[str]:
        return [text for text in player.final_texts(story, bot.user_id).values() if "ends at the sea" in text]

    player.wait_for(reply_arrived, timeout_s=30, what="the character's reply")
    with psycopg.connect(postgres_url) as conn:
        said = [row[0] for row in conn.execute("SELECT text FROM turns WHERE role = 'user' ORDER BY turn_id")]
        players = [row[0] for row in conn.execute("SELECT player FROM story_players")]
        cached_rooms = {row[0] for row in conn.execute(
            pgsql.SQL("SELECT room_id FROM {}.room_meta").format(pgsql.Identifier(adapter_schema_name(bot.user_id))))}
    assert said and said[-1].endswith("Where does this road lead?") and players == [player.user_id]
    assert story in cached_rooms  # the cache too, in the bot account's own schema
    assert not (tmp_path / "data" / "engine.sqlite3").exists() and not (tmp_path / "data" / "adapter.sqlite3").exists()
    exported = rpbot("export", "--config", tmp_path / "rpbot.toml", "--chat", player.state_event(story, "org.rpbot.room")["chat_id"])
    assert exported.returncode == 0 and "Where does this road lead?" in exported.stdout and "ends at the sea" in exported.stdout
