"""What a player sees in Element (matrix-js-sdk, as Element Web runs it) on a stock Synapse.

Every character line is sent by its character: Element names a line's sender with the sender's room
member at that event (`event.sender`), so each line's sender name and avatar must be the speaking
character's (its per-message profile says which one that is), in a one-character and a
two-character story, with encryption on and off, after a restart of the bot, and after the bot's
own profile changed (which makes the homeserver rewrite the bot's member event in every room).
Story rooms hold Element's settings hiding those switches.

And the first minutes: the player's first line in the room they invite the bot to is answered by
the welcome, whose rooms are pills; accepting the Space and opening the story leaves no invite
waiting and no red badge, and the Lobby opens from its pill without an invite.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapter.matrix.test_element_cross_signing import World
from tests.support.element_js import ElementClient, SeenMessage, ensure_node_client
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse

HIDDEN_SWITCHES = {"showDisplaynameChanges": False, "showAvatarChanges": False}
PILL = re.compile(r'href="https://matrix\.to/#/(![^"?]+)\?via=localhost"')


@pytest.fixture(scope="module", autouse=True)
def node_client() -> None:
    ensure_node_client()


@pytest.fixture
def world(synapse_default_limits: SynapseServer, tmp_path: Path) -> Iterator[World]:
    world = World(synapse_default_limits, tmp_path)  # Synapse's own rate limits, as a player's homeserver has them
    yield world
    world.close()


def character_lines(element: ElementClient, room_id: str, bot_id: str) -> list[SeenMessage]:
    """The bot's character lines in the room (its messages, not their edits nor its notices)."""
    return [m for m in element.seen if m.room_id == room_id and m.sender == bot_id and m.msgtype == "m.text" and m.edits is None]


def talk(element: ElementClient, room_id: str, bot_id: str, line: str) -> list[SeenMessage]:
    """Say `line`; return the character lines that answer it, once the answer is complete."""
    before = {m.event_id for m in character_lines(element, room_id, bot_id)}
    element.send_text(room_id, line)
    element.wait_for(lambda: [m for m in character_lines(element, room_id, bot_id) if m.event_id not in before], timeout_s=120,
                     what=f"the answer to {line!r}")
    element.pump(3)  # a second character's short answer, and the edits
    return [m for m in character_lines(element, room_id, bot_id) if m.event_id not in before]


def assert_sent_by_their_characters(lines: list[SeenMessage], cast: set[str]) -> set[str]:
    """Each line's sender, as Element shows it, is the character speaking it; returns who spoke."""
    assert lines
    for line in lines:
        assert line.failure is None, line
        assert line.profile is not None, line
        assert (line.sender_name, line.sender_avatar) == (line.profile["displayname"], line.profile["avatar_url"]), line
        assert line.sender_avatar and line.sender_avatar.startswith("mxc://"), line
        assert line.body and not line.body.startswith(f"{line.sender_name}:"), line  # the sender names the speaker, not the text
        assert line.mentions == {}, line  # the player's name in a line is not a mention
    speakers = {line.sender_name for line in lines if line.sender_name}
    assert speakers <= cast, speakers
    return speakers


def one_message_replies(fake_openai: FakeOpenAIServer) -> dict:
    """The model echoes the player's line in one chunk: one message per reply, no edits (the stock rate limit is
    slow). Only the line: an echo of the whole transcript would name the other character, who would answer it."""
    fake_openai.default_reply = Reply(text=lambda request: "Echo: " + (request.player_line.strip().splitlines() or [""])[-1],
                                      chunk_size=100_000)
    return {"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "unencrypted"])
def test_every_character_line_is_sent_by_its_character_in_element(world: World, fake_openai: FakeOpenAIServer, encryption: bool) -> None:
    bot = world.start_bot(encryption=encryption, llm=one_message_replies(fake_openai))
    element, user = world.player()
    space, lobby, one = world.onboard(user, timeout_s=120)
    user.send_text(lobby, "!new wren with odile")
    group = user.wait_for(lambda: next((r["room_id"] for r in user.hierarchy(space) if "&" in r.get("name", "")), None),
                          timeout_s=120, what="the two-character story")
    user.join(group)
    element.wait_for(lambda: len(character_lines(element, group, world.bot_id)) >= 2, timeout_s=120, what="the greeting and the entrance")

    talk(element, one, world.bot_id, "Is there more tea?")
    talk(element, group, world.bot_id, "Odile, what news from the Lark?")
    talk(element, group, world.bot_id, "Wren, where does your map end?")
    bot.stop()
    bot.start()
    talk(element, one, world.bot_id, "Still there?")
    talk(element, group, world.bot_id, "Odile, will the weather hold?")

    bot.stop()  # the operator names the bot: the homeserver rewrites its member event in every room it is in
    bot.config_path.write_text(bot.config_path.read_text().replace("[matrix]\n", '[matrix]\ndisplay_name = "The Storyteller"\n'))
    bot.start()
    for room in (one, group, lobby):
        assert user.state_event(room, "m.room.member", world.bot_id)["displayname"] == "The Storyteller"  # every face reset
    talk(element, one, world.bot_id, "And now?")
    talk(element, group, world.bot_id, "Wren, and now?")

    tamsin, pair = {"Brother Tamsin Vale"}, {"Wren Halloway", "Captain Odile Marchetti"}
    assert assert_sent_by_their_characters(character_lines(element, one, world.bot_id), tamsin) == tamsin
    assert assert_sent_by_their_characters(character_lines(element, group, world.bot_id), pair) == pair
    assert len(character_lines(element, one, world.bot_id)) == 4 and len(character_lines(element, group, world.bot_id)) == 6
    from_bot = [m for m in element.seen if m.room_id in (one, group) and m.sender == world.bot_id]
    assert all(m.encrypted == encryption for m in from_bot)
    rooms = element.rooms()
    assert rooms[one]["settings"] == rooms[group]["settings"] == HIDDEN_SWITCHES


@pytest.mark.timeout(300)
def test_following_the_welcome_leaves_nothing_pending(world: World, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.add_rule(Reply(text="*Tamsin pours.* Sit, Tobin Reyes. The tea is still warm."), purpose="narrate")
    world.start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30})
    element, user = world.player()
    user._call("PUT", f"/_matrix/client/v3/profile/{user.user_id}/displayname", json={"displayname": "Tobin Reyes"})

    # Element's "Start chat": the room is made and the player's first line sent before the bot has joined.
    first_room = user.create_room()
    user.send_text(first_room, "hi! how does this work?")
    user._call("POST", f"/_matrix/client/v3/rooms/{first_room}/invite", json={"user_id": world.bot_id})
    element.wait_for(lambda: element.shown(first_room, world.bot_id), timeout_s=120, what="the bot's first answer")
    element.pump(3)
    (welcome,) = element.shown(first_room, world.bot_id)  # the welcome answers the line: nothing before it
    assert welcome.body and welcome.body.startswith("Welcome!") and welcome.msgtype == "m.notice"
    assert welcome.sender_avatar and welcome.sender_avatar.startswith("mxc://")  # the bot's own portrait, not a bare letter

    formatted = user.wait_for(lambda: user.messages_from(first_room, world.bot_id), what="the welcome")[0]["content"]["formatted_body"]
    space = user.wait_for_invite(room_type="m.space")
    invited = {room_id for room_id, room in element.rooms().items() if room["membership"] == "invite"}
    (story,) = invited - {space}  # the Space and the first story are invited; the Lobby is not
    pills = set(PILL.findall(formatted))
    (lobby,) = pills - {space, story}  # the welcome links all three as pills

    element.join(space)  # accept the Space
    assert {room["room_id"]: room.get("name") for room in user.hierarchy(space)}[lobby] == "Lobby"
    element.join(story)  # open the story
    element.wait_for(lambda: character_lines(element, story, world.bot_id), what="the greeting")
    talk(element, story, world.bot_id, "Good evening.")  # the reply says "Tobin Reyes": no mention, no highlight
    element.join(lobby)  # its pill: a room of the Space, joined without an invite
    element.pump(2)

    rooms = element.rooms()
    assert [room_id for room_id, room in rooms.items() if room["membership"] == "invite"] == []
    assert {room_id for room_id, room in rooms.items() if room["membership"] == "join"} == {first_room, space, lobby, story}
    assert all(room["highlights"] == 0 for room in rooms.values()), rooms  # no red badge
    assert rooms[story]["settings"] == HIDDEN_SWITCHES and rooms[lobby]["settings"] is None
