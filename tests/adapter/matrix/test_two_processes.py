"""Two bot processes, each its own bot account, share one PostgreSQL database against one Synapse.

Each process answers the rooms its account made, and every line once: players play with one bot,
the other, or both at once (a Space from each), while both processes run and write to the one
database together. The stories and the players' personas are in one place (a persona set in one
bot's Lobby is the one the other bot's Lobby shows), each bot's cache is a schema of its own, and a
restart of one process leaves the other playing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql

from adapter.matrix.store_schema import adapter_schema_name
from tests.adapter.matrix.conftest import RunningBot, bot_starter, onboard
from tests.adapter.matrix.test_restart_persistence import bot_texts, openai_llm, say_and_wait
from tests.support.bot_process import BotProcess
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse

LINES = 3


@pytest.fixture
def two_bots(synapse: SynapseServer, fake_openai: FakeOpenAIServer, postgres_url: str, tmp_path: Path) -> Iterator[tuple[RunningBot, RunningBot]]:
    started: list[BotProcess] = []
    bots = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        bots.append(bot_starter(synapse, tmp_path / name, started, postgres_url)(llm=openai_llm(fake_openai)))
    yield bots[0], bots[1]
    for process in started:
        assert process.stop() == 0, process.log_text()[-3000:]


def play_lines(player: MatrixUser, room: str, tag: str) -> None:
    for number in range(LINES):
        player.send_text(room, f"{tag} line {number}")


def answered_once_by(player: MatrixUser, room: str, tag: str, bot: RunningBot, other: RunningBot) -> None:
    """Every line of `tag` in `room` answered exactly once, by `bot`; nothing in it from `other`."""
    player.sync_once()
    texts = bot_texts(player, room, bot)
    for number in range(LINES):
        assert sum(text.endswith(f"Echo: {tag} line {number}") for text in texts) == 1, (tag, number, texts)
    assert player.messages_from(room, other.user_id) == []


def test_two_processes_on_one_database_each_answer_their_own_rooms_once(
    two_bots: tuple[RunningBot, RunningBot], postgres_url: str
) -> None:
    first, second = two_bots
    assert first.user_id != second.user_id
    alice, bob, carol = first.player(), second.player(), first.player()
    _, _, alice_story = onboard(first, alice)
    _, _, bob_story = onboard(second, bob)
    _, carol_first_lobby, carol_first_story = onboard(first, carol)
    _, carol_second_lobby, carol_second_story = onboard(second, carol)
    for player, room, bot in ((alice, alice_story, first), (bob, bob_story, second),
                              (carol, carol_first_story, first), (carol, carol_second_story, second)):
        player.wait_for(lambda player=player, room=room, bot=bot: bot_texts(player, room, bot), what="the greeting")

    # Every player at once, so that both processes write to the one database together.
    plays = [
        threading.Thread(target=play_lines, args=args)
        for args in ((alice, alice_story, "alice"), (bob, bob_story, "bob"),
                     (carol, carol_first_story, "carol-first"), (carol, carol_second_story, "carol-second"))
    ]
    for play in plays:
        play.start()
    for play in plays:
        play.join()
    expected = ((alice, alice_story, "alice", first), (bob, bob_story, "bob", second),
                (carol, carol_first_story, "carol-first", first), (carol, carol_second_story, "carol-second", second))
    for player, room, tag, bot in expected:
        player.wait_for(lambda player=player, room=room, tag=tag, bot=bot: sum(
            f"Echo: {tag} line" in text for text in bot_texts(player, room, bot)) == LINES, timeout_s=60, what=f"{tag}'s answers")
    for player, room, tag, bot in expected:
        other = second if bot is first else first
        answered_once_by(player, room, tag, bot, other)

    with psycopg.connect(postgres_url) as conn:
        owners = sorted(row[0] for row in conn.execute("SELECT owner FROM chats"))
        lines = [row[0] for row in conn.execute("SELECT text FROM turns WHERE role = 'user' AND text LIKE '%line %'")]
        cached = {
            bot.user_id: {row[0] for row in conn.execute(
                pgsql.SQL("SELECT room_id FROM {}.room_meta").format(pgsql.Identifier(adapter_schema_name(bot.user_id))))}
            for bot in (first, second)
        }
    assert owners == sorted([alice.user_id, bob.user_id, carol.user_id, carol.user_id])  # the stories in one place
    assert len(lines) == 4 * LINES == len(set(lines))  # each line recorded once
    assert {alice_story, carol_first_story} <= cached[first.user_id] and {bob_story, carol_second_story} <= cached[second.user_id]
    assert cached[first.user_id].isdisjoint(cached[second.user_id])

    # Personas in one place: set in the first bot's Lobby, shown by the second's.
    carol.send_text(carol_first_lobby, "!persona Cara: a cartographer")
    carol.wait_for(lambda: any("now play **Cara**" in t for t in bot_texts(carol, carol_first_lobby, first)), what="the persona set")
    carol.send_text(carol_second_lobby, "!persona")
    carol.wait_for(lambda: any("you play **Cara**" in t for t in bot_texts(carol, carol_second_lobby, second)),
                   what="the same persona shown by the other bot")

    # One process restarts; the other plays on meanwhile, and the restarted one answers what it missed once.
    assert first.process.stop() == 0
    alice.send_text(alice_story, "while the first was down")
    say_and_wait(bob, bob_story, second, "while the first restarts", "Echo: while the first restarts")
    first.process.start()
    alice.wait_for(lambda: any(t.endswith("Echo: while the first was down") for t in bot_texts(alice, alice_story, first)),
                   timeout_s=60, what="the line sent while the first bot was down")
    alice.sync_once()
    assert sum(t.endswith("Echo: while the first was down") for t in bot_texts(alice, alice_story, first)) == 1
    assert alice.messages_from(alice_story, second.user_id) == []
