"""Onboarding and the Lobby against a real Synapse: one Space per player, whatever the invites."""

from __future__ import annotations

import threading

import pytest

from tests.adapter.matrix.conftest import onboard

pytestmark = pytest.mark.synapse


def spaces(rooms: list[dict]) -> list[dict]:
    return [room for room in rooms if room.get("room_type") == "m.space"]


def test_a_second_invite_reuses_the_space(start_bot) -> None:
    bot = start_bot()
    player = bot.player()
    space_id, _, _ = onboard(bot, player)
    created_before = len(bot.rooms_created())

    second_dm = player.create_room(invite=[bot.user_id])
    player.wait_for(lambda: player.messages_from(second_dm, bot.user_id), what="the welcome in the second room")
    assert space_id in player.messages_from(second_dm, bot.user_id)[0]["content"]["body"]
    assert len(bot.rooms_created()) == created_before == 3


def test_two_invites_at_once_make_one_space(start_bot) -> None:
    bot = start_bot()
    player = bot.player()
    barrier = threading.Barrier(2)
    rooms: list[str] = []

    def invite() -> None:
        barrier.wait()
        rooms.append(player.create_room(invite=[bot.user_id]))

    threads = [threading.Thread(target=invite) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for dm in rooms:
        player.wait_for(lambda dm=dm: player.messages_from(dm, bot.user_id), what="a welcome in each invite room")
    welcomes = {player.messages_from(dm, bot.user_id)[0]["content"]["body"] for dm in rooms}
    assert len(welcomes) == 1  # both point at the same Space
    created = bot.rooms_created()
    assert len(spaces(created)) == 1 and len(created) == 3


def test_new_in_the_lobby_starts_a_story_with_host_and_guest(start_bot) -> None:
    bot = start_bot()
    player = bot.player()
    space_id, lobby, first_story = onboard(bot, player)

    player.send_text(lobby, "!new wren with odile")
    player.wait_for(lambda: len(player.hierarchy(space_id)) == 4, what="a third room in the Space")
    new_room = next(r["room_id"] for r in player.hierarchy(space_id) if r["room_id"] not in (space_id, lobby, first_story))
    player.join(new_room)
    greeting = player.wait_for(lambda: player.messages_from(new_room, bot.user_id), what="the new story's greeting")
    assert greeting[0]["content"]["com.beeper.per_message_profile"]["displayname"] == "Wren Halloway"
    first = player.state_event(first_story, "org.rpbot.room")
    second = player.state_event(new_room, "org.rpbot.room")
    assert second["platform_chat_id"] != first["platform_chat_id"]
    assert second["chat_id"] != first["chat_id"]
    assert "Marchetti" in player.state_event(new_room, "m.room.topic")["topic"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("!new banana", "No character called `banana`"),
        ("!new wren with wren", "cannot be their own guest"),
        ("!frobnicate", "Unknown command `!frobnicate`"),
        ("!characters", "Wren Halloway"),
        ("!help", "!new [character] [with character]"),
    ],
)
def test_lobby_commands_answer_and_bad_ones_say_why(start_bot, line: str, expected: str) -> None:
    bot = start_bot()
    player = bot.player()
    _, lobby, _ = onboard(bot, player)
    player.send_text(lobby, line)
    notices = player.wait_for(
        lambda: [e["content"]["body"] for e in player.messages_from(lobby, bot.user_id) if e["content"].get("msgtype") == "m.notice"],
        what=f"an answer to {line}",
    )
    assert expected in notices[-1]
    if line.startswith("!new "):
        assert "Usage: `!new [character] [with character] [at time] [: scenario]`" in notices[-1]


def test_a_friend_the_owner_invites_in_element_plays_and_is_answered(start_bot) -> None:
    """An allowed friend invited with Element's own invite (not `!invite`) plays once they join."""
    bot = start_bot()
    owner = bot.player()
    _, _, story = onboard(bot, owner)
    friend = bot.player()
    owner._call("POST", f"/_matrix/client/v3/rooms/{story}/invite", json={"user_id": friend.user_id})
    friend.join(story)
    friend.wait_for(lambda: [e for e in friend.messages_from(story, bot.user_id) if "joins the story" in e["content"]["body"]],
                    what="the room told who the friend plays")
    greeting_and_before = len([e for e in friend.messages_from(story, bot.user_id) if e["content"].get("msgtype") == "m.text"])
    friend.send_text(story, "Let me play too")
    friend.wait_for(
        lambda: len([e for e in friend.messages_from(story, bot.user_id) if e["content"].get("msgtype") == "m.text"]) > greeting_and_before,
        what="a character's answer to the friend",
    )
    assert not [e for e in friend.messages_from(story, bot.user_id) if "belongs to" in e["content"]["body"]]
