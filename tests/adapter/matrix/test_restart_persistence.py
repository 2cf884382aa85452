"""Restarts against a real Synapse: lost cache, SIGKILL mid-turn, lines sent while the bot was down."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.matrix_user import MatrixUser

pytestmark = [pytest.mark.synapse, pytest.mark.on_both_backends]

CHARACTERS = ["wren", "odile", "tamsin", "ilse"]


def openai_llm(server: FakeOpenAIServer) -> dict:
    return {"provider": "openai", "base_url": server.base_url, "narrative_model": "m", "timeout_s": 30}


def bot_texts(player: MatrixUser, room: str, bot: RunningBot) -> list[str]:
    return list(player.final_texts(room, bot.user_id).values())


def say_and_wait(player: MatrixUser, room: str, bot: RunningBot, line: str, expect: str, timeout_s: float = 60) -> None:
    player.send_text(room, line)
    player.wait_for(lambda: any(expect in t for t in bot_texts(player, room, bot)), timeout_s=timeout_s, what=f"a reply to {line!r}")


def test_lost_cache_twelve_rooms_rebuilt_without_a_new_room(start_bot, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    bot = start_bot(llm=openai_llm(fake_openai))
    player = bot.player()
    space_id, lobby, _ = onboard(bot, player)
    for index in range(12):
        player.send_text(lobby, f"!new {CHARACTERS[index % 4]}")
    rooms = player.wait_for(lambda: [h for h in [player.hierarchy(space_id)] if len(h) == 15], timeout_s=90, what="12 new rooms")[0]
    stories = [r for r in rooms if r["room_id"] not in (space_id, lobby) and r.get("name") != "Lobby"]
    for room in stories:
        player.join(room["room_id"])
    talked = stories[-3:]
    for index, room in enumerate(talked):
        say_and_wait(player, room["room_id"], bot, f"before restart in room {index}", f"Echo: before restart in room {index}")
    ids_before = {player.state_event(r["room_id"], "org.rpbot.room")["platform_chat_id"] for r in stories}
    created_before = len(bot.rooms_created())

    assert bot.process.stop() == 0
    bot.lose_cache()
    bot.process.start()

    assert "rooms_restored=15" in bot.process.log_text()  # space, lobby, 13 stories
    for index, room in enumerate(talked):
        fake_openai.reset()
        say_and_wait(player, room["room_id"], bot, f"after restart in room {index}", f"Echo: after restart in room {index}")
        (request,) = fake_openai.requests_for(purpose="narrate")
        history = " ".join(m["content"] for m in request.messages)
        assert f"before restart in room {index}" in history  # the room continues its own story
        assert room["name"].split(" ")[0] in request.system_prompt
    assert len(bot.rooms_created()) == created_before

    player.send_text(player.invite_room, "!characters")  # the invite room has no identity: bound anew, as new
    player.wait_for(
        lambda: any("Wren Halloway" in e["content"]["body"] for e in player.messages_from(player.invite_room, bot.user_id)),
        what="!characters answered in the invite room",
    )

    player.send_text(lobby, "!new ilse")
    player.wait_for(lambda: len(player.hierarchy(space_id)) == 16, timeout_s=60, what="one more room")
    newest = next(r for r in player.hierarchy(space_id) if r["room_id"] not in {s["room_id"] for s in rooms})
    player.join(newest["room_id"])
    assert player.state_event(newest["room_id"], "org.rpbot.room")["platform_chat_id"] not in ids_before


def test_sigkill_in_the_middle_of_a_turn_gives_exactly_one_complete_reply(start_bot, fake_openai: FakeOpenAIServer) -> None:
    full_reply = " ".join(f"word{i}" for i in range(60)) + "."
    fake_openai.add_rule(Reply(text=full_reply, chunk_size=6, chunk_delay_s=0.1), purpose="narrate")
    bot = start_bot(llm=openai_llm(fake_openai))
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.wait_for(lambda: bot_texts(player, story, bot), what="the greeting")

    player.send_text(story, "Tell me everything, slowly.")
    player.wait_for(lambda: len(player.final_texts(story, bot.user_id)) == 2, what="the reply to start streaming")
    bot.process.kill()
    time.sleep(0.5)
    bot.process.start()

    player.wait_for(lambda: any(t.endswith(full_reply) for t in bot_texts(player, story, bot)), timeout_s=60, what="the complete reply")
    time.sleep(2)
    player.sync_once()
    texts = bot_texts(player, story, bot)
    assert len(texts) == 2, texts  # the greeting and one reply, completed in place
    assert texts[1].endswith(full_reply)


def test_lines_sent_while_the_bot_was_down_are_each_answered_once(start_bot, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    bot = start_bot(llm=openai_llm(fake_openai))
    player = bot.player()
    _, _, story = onboard(bot, player)
    say_and_wait(player, story, bot, "first line", "Echo: first line")
    assert bot.process.stop() == 0

    for line in ("while away one", "while away two", "while away three"):
        player.send_text(story, line)
    bot.process.start()
    player.wait_for(lambda: sum("while away" in t for t in bot_texts(player, story, bot)) == 3, timeout_s=60, what="three answers")

    assert bot.process.stop() == 0  # and once more, with the cache gone this time: nothing is answered again
    bot.lose_cache()
    player.send_text(story, "after the second restart")
    bot.process.start()
    say_and_wait(player, story, bot, "and one more", "Echo: and one more")
    time.sleep(1)
    player.sync_once()
    texts = bot_texts(player, story, bot)
    for line in ("first line", "while away one", "while away two", "while away three", "after the second restart", "and one more"):
        assert sum(t.endswith(f"Echo: {line}") for t in texts) == 1, (line, texts)
