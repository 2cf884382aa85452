"""End to end against a real Synapse and the real `rpbot run` process.

A player invites the bot, accepts the Space, finds the story room through the
Space hierarchy, says a line and gets the character's reply (from a real
OpenAI-compatible HTTP server); a user not allowed is refused and gets nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.synapse import SynapseServer

pytestmark = [pytest.mark.synapse, pytest.mark.on_both_backends]


def test_invite_space_story_room_and_a_reply(synapse: SynapseServer, start_bot, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    fake_openai.add_rule(Reply(text="*Mira looks up from her map.* Travellers are rare on this road."), purpose="narrate")
    bot = start_bot(
        llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "story-model", "timeout_s": 10},
    )
    bot_id = bot.user_id
    player = bot.player()

    dm = player.create_room(invite=[bot_id])
    space_id = player.wait_for_invite(room_type="m.space", timeout_s=60)
    player.join(space_id)

    identity = player.state_event(space_id, "org.rpbot.space")
    assert identity == {"owner": player.user_id, "version": 1}

    def children() -> dict[str, dict]:
        found = {room["room_id"]: room for room in player.hierarchy(space_id) if room["room_id"] != space_id}
        return found if len(found) == 2 else {}

    children = player.wait_for(children, timeout_s=30, what="the lobby and the story room in the Space")
    story_id = next(room_id for room_id, room in children.items() if room.get("name") != "Lobby")
    lobby_id = next(room_id for room_id, room in children.items() if room.get("name") == "Lobby")
    player.join(story_id)  # a restricted room: Space members may join

    story_identity = player.state_event(story_id, "org.rpbot.room")
    assert story_identity["owner"] == player.user_id
    assert story_identity["room_type"] == "chat"
    assert story_identity["space_id"] == space_id
    assert story_identity["chat_id"] and story_identity["platform_chat_id"]
    player.join(lobby_id)
    assert player.state_event(lobby_id, "org.rpbot.room")["room_type"] == "lobby"
    # Synapse's stock default room version is 12: the bot is the rooms' creator, unlimited and unlisted.
    for room_id in (space_id, lobby_id, story_id):
        create = player.state_event(room_id, "m.room.create")
        assert create["room_version"] == "12"
        power = player.state_event(room_id, "m.room.power_levels")
        assert bot_id not in power["users"] and power["users"][player.user_id] == 50
        assert power["events"]["org.rpbot.room"] == 100

    greeting = player.wait_for(lambda: player.final_texts(story_id, bot_id), what="the greeting")
    assert len(greeting) == 1
    player.wait_for(lambda: player.messages_from(dm, bot_id), what="the welcome notice")
    assert "Space" in player.messages_from(dm, bot_id)[0]["content"]["body"]

    player.send_text(story_id, "Hello there. Where does this road lead?")

    def reply_arrived() -> list[str]:
        return [text for text in player.final_texts(story_id, bot_id).values() if "Travellers are rare" in text]

    (reply,) = player.wait_for(reply_arrived, timeout_s=30, what="the character's reply")
    assert reply.endswith("Travellers are rare on this road.")
    narrate = fake_openai.requests_for(purpose="narrate")
    assert narrate and narrate[-1].player_line.endswith("Hello there. Where does this road lead?")
    assert narrate[-1].model == "story-model"


def test_user_not_allowed_is_refused_and_gets_no_space(synapse: SynapseServer, start_bot) -> None:
    bot = start_bot(allowed=("@friend-*:localhost",))
    bot_id = bot.user_id
    stranger = bot.player("stranger")

    dm = stranger.create_room(invite=[bot_id])
    stranger.wait_for(lambda: stranger.members(dm).get(bot_id) == "leave", timeout_s=30, what="the bot to refuse")

    stranger.sync_once(timeout_ms=2000)
    assert stranger.invites == {}
    assert bot.rooms_created() == []
