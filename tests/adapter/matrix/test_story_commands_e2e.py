"""Story-room commands end to end: real Synapse, the real bot process, the real engine (offline demo model)."""

from __future__ import annotations

import pytest

from tests.adapter.matrix.conftest import onboard
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
