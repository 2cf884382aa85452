"""Story-room commands end to end: real Synapse, the real bot process, the real engine (offline demo model)."""

from __future__ import annotations

import pytest

from tests.adapter.matrix.conftest import onboard
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.matrix_user import MatrixUser

pytestmark = pytest.mark.synapse


def ask(player: MatrixUser, room: str, bot_id: str, line: str, expect: str, timeout_s: float = 30) -> str:
    """Send a command line and return the bot's notice answering it (the first containing `expect`)."""
    seen = len(player.messages_from(room, bot_id))
    player.send_text(room, line)

    def answered() -> str | None:
        for event in player.messages_from(room, bot_id)[seen:]:
            body = event["content"].get("body", "")
            if event["content"].get("msgtype") == "m.notice" and expect in body:
                return body
        return None

    return player.wait_for(answered, timeout_s=timeout_s, what=f"{expect!r} in answer to {line!r}")


def test_story_commands_reach_the_engine(start_bot) -> None:
    bot = start_bot()  # the offline demo model
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.wait_for(lambda: player.final_texts(story, bot.user_id), what="the greeting")

    assert "A duration looks like" in ask(player, story, bot.user_id, "!skip banana", "`banana` is not a duration")
    # Brother Tamsin's story begins before dawn (its opening says so): 5:00, so two hours on is 7:00.
    assert "Wednesday 1 April 2026, 7:00" in ask(player, story, bot.user_id, "!skip 2h", "Time passes")
    assert "Thursday 2 April 2026, 9:00" in ask(player, story, bot.user_id, "!jump tomorrow 9am", "It is now")
    assert "is not after the story's clock" in ask(player, story, bot.user_id, "!jump yesterday", "not after")
    assert "Story time: Thursday 2 April 2026, 9:00" in ask(player, story, bot.user_id, "!status", "Story time")

    ask(player, story, bot.user_id, "!plan the harvest fair at saturday noon", "Planned: **the harvest fair**")
    assert "the harvest fair** (planned, due Saturday 4 April 2026, 12:00)" in ask(player, story, bot.user_id, "!events", "World events")
    ask(player, story, bot.user_id, "!threads", "threads")
    assert "tokens" in ask(player, story, bot.user_id, "!context", "Next prompt for")
    assert "In this story you now play **Tobin Reyes**: a shipwrecked deckhand" in ask(
        player, story, bot.user_id, "!persona Tobin Reyes: a shipwrecked deckhand", "you now play")
    assert "You play: **Tobin Reyes**: a shipwrecked deckhand" in ask(player, story, bot.user_id, "!status", "You play")
    full = ask(player, story, bot.user_id, "!context full", "max_tokens")
    assert "[system]" in full and "User: Tobin Reyes" in full and "[user]\nTobin" not in full

    ask(player, story, bot.user_id, "!meanwhile wren odile an argument about the harbour", "You will hear of it")
    seen = len(player.messages_from(story, bot.user_id))
    player.send_text(story, "I walk down to the harbour.")
    digest = player.wait_for(
        lambda: [e["content"]["body"] for e in player.messages_from(story, bot.user_id)[seen:] if e["content"]["body"].startswith("*Meanwhile…*")],
        what="the meanwhile digest on the next turn",
    )
    assert len(digest) == 1
    remembered = ask(player, story, bot.user_id, "!memory you harbour", "You remember")
    assert "harbour" in remembered and "remembers" not in remembered
    ask(player, story, bot.user_id, "!scene close", "The scene closes")


def test_a_new_players_persona_is_their_display_name_until_they_set_one(start_bot) -> None:
    bot = start_bot()  # the offline demo model
    player = bot.player()
    player._call("PUT", f"/_matrix/client/v3/profile/{player.user_id}/displayname", json={"displayname": "Tobin Reyes"})
    _, lobby, story = onboard(bot, player)
    assert "you play **Tobin Reyes**" in ask(player, lobby, bot.user_id, "!persona", "you play")
    assert "you now play **Tobin**: a deckhand" in ask(player, lobby, bot.user_id, "!persona Tobin: a deckhand", "you now play")
    assert "You play: **Tobin**: a deckhand" in ask(player, story, bot.user_id, "!status", "You play")


def test_a_numbered_memory_is_forgotten_even_after_a_restart_on_a_model_without_a_system_role(
    start_bot, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.system_role = False  # a Gemma-style chat template: a system message would be refused
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m",
                         "timeout_s": 30, "context_tokens": 4000, "system_placement": "first_user",
                         "sampling": {"temperature": 0.7, "min_p": 0.05}})
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.wait_for(lambda: player.final_texts(story, bot.user_id), what="the greeting")
    for line in ("My sister is called Odalys.", "The key is under the third stone."):
        player.send_text(story, line)
        player.wait_for(lambda line=line: any(t.endswith(f"Echo: {line}") for t in player.final_texts(story, bot.user_id).values()),
                        timeout_s=30, what=f"the answer to {line!r}")

    listed = ask(player, story, bot.user_id, "!memory", "remembers:")
    first = listed.split("\n1. ", 1)[1].split("\n")[0]
    assert "Odalys" in first and "`!forget <number>`" in listed
    assert bot.process.stop() == 0
    bot.process.start()  # the list's numbers survive a restart

    assert "Odalys" in ask(player, story, bot.user_id, "!forget 1", "no longer remembers")
    assert "remembers nothing about" in ask(player, story, bot.user_id, "!memory odalys", "remembers nothing")
    assert "Odalys" in ask(player, story, bot.user_id, "!memory you odalys", "You remember")
    replies = fake_openai.requests_for(purpose="narrate")
    assert replies and all(r.json["min_p"] == 0.05 and r.messages[0]["role"] == "user" for r in replies)
