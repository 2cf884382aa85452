"""Friends play one story, against a real Synapse and the real bot, encrypted and not.

Each player is an Element-like client (matrix-js-sdk with its Rust crypto, tests/element) and a
plain API handle for joining; the model is the strict fake server, which echoes each line in one
chunk. The owner invites a friend with `!invite`; the friend joins and plays under their display
name, reads the replies (decrypted, in an encrypted room: their devices got the room keys), and
each player's lines are answered, each reply mentioning exactly the player it answers. The prompt
names both personas; each player remembers only what they witnessed; a user who may not use the
bot cannot play (refused by `!invite`, their Element invite withdrawn); `!remove` ends a player.
The homeserver keeps Synapse's own rate limits, as a player's has them: the requests a story of
several players makes per exchange are those of a story of one, and the replies come in one message.

After a restart, the players are those the room's membership says: a friend who joined while the
bot was down plays, one who was removed no longer does (their line from before is not taken, and
they are told once).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.adapter.matrix.test_element_cross_signing import World
from tests.adapter.matrix.test_element_faces import character_lines
from tests.adapter.matrix.test_restart_persistence import openai_llm, say_and_wait
from tests.adapter.matrix.test_story_commands_e2e import ask
from tests.support.element_js import ElementClient, SeenMessage, ensure_node_client
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


@pytest.fixture(scope="module", autouse=True)
def node_client() -> None:
    ensure_node_client()


@pytest.fixture
def world(synapse_default_limits: SynapseServer, tmp_path: Path) -> Iterator[World]:
    world = World(synapse_default_limits, tmp_path)  # stock rate limits
    yield world
    world.close()


def heard_replies(fake_openai: FakeOpenAIServer) -> dict:
    """The model answers the last line of its prompt's last user message, in one chunk (one message per
    reply, no edits): a reply says which line it answers, even when other lines came before it."""
    fake_openai.default_reply = Reply(text=lambda request: "Heard: " + (request.player_line.strip().splitlines() or [""])[-1],
                                      chunk_size=100_000)
    return {"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30}


def named(user: MatrixUser, name: str) -> None:
    user._call("PUT", f"/_matrix/client/v3/profile/{user.user_id}/displayname", json={"displayname": name})


def notice(element: ElementClient, room_id: str, bot_id: str, line: str, expect: str) -> str:
    """Send `line` (a command); return the bot's notice that answers it (the first holding `expect`)."""
    before = {m.event_id for m in element.seen}
    element.send_text(room_id, line)
    return told(element, room_id, bot_id, expect, before)


def told(element: ElementClient, room_id: str, bot_id: str, expect: str, before: set[str] = frozenset()) -> str:
    """The bot's notice holding `expect`, once the client shows it."""
    found = element.wait_for(
        lambda: next((m for m in element.shown(room_id, bot_id)
                      if m.event_id not in before and m.msgtype == "m.notice" and expect in (m.body or "")), None),
        timeout_s=90, what=f"a notice saying {expect!r}")
    return found.body or ""


def answer(element: ElementClient, room_id: str, bot_id: str, line: str) -> SeenMessage:
    """Say `line`; the character line that answers it (the model echoes it), as the client shows it (decrypted)."""
    element.send_text(room_id, line)
    reply = element.wait_for(lambda: next((m for m in character_lines(element, room_id, bot_id) if (m.body or "").endswith(line)), None),
                             timeout_s=90, what=f"the answer to {line!r}")
    assert reply.failure is None and reply.shield != "RED", reply
    return reply


def mentioned(message: SeenMessage) -> list[str]:
    return sorted((message.mentions or {}).get("user_ids", []))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("encryption", [True, False], ids=["encrypted", "unencrypted"])
def test_friends_play_one_story_each_answered_and_each_a_witness(world: World, fake_openai: FakeOpenAIServer, encryption: bool) -> None:
    world.start_bot(encryption=encryption, llm=heard_replies(fake_openai))
    bot = world.bot_id
    owner_sees, owner = world.player()
    friend_sees, friend = world.player()
    named(owner, "Tobin Reyes")
    named(friend, "Mara Vell")
    _, _, story = world.onboard(owner, timeout_s=120)
    owner_sees.wait_for(lambda: character_lines(owner_sees, story, bot), timeout_s=90, what="the greeting")
    owner_sees.send_text(story, "!invite odile")  # a second character, its entrance under its own face
    owner_sees.wait_for(lambda: [m for m in character_lines(owner_sees, story, bot) if m.sender_name == "Captain Odile Marchetti"],
                        timeout_s=90, what="Odile's entrance")
    alone = answer(owner_sees, story, bot, "My sister is called Odalys.")  # before the friend comes
    assert mentioned(alone) == []  # alone with the bot: a reply mentions no one

    # The owner invites a friend; the friend joins and plays under their display name.
    assert "Invited" in notice(owner_sees, story, bot, f"!invite {friend.user_id}", "Invited")
    friend.wait_for(lambda: story in friend.invites, what="the friend's invite")
    friend_sees.join(story)
    told(owner_sees, story, bot, "**Mara Vell** joins the story")
    assert friend.user_id not in owner.state_event(story, "m.room.power_levels")["users"]  # the default level: talk and react

    # Each player's line is answered, the reply mentioning just that player, and both read it.
    to_owner = answer(owner_sees, story, bot, "I light the lamp.")
    assert mentioned(to_owner) == [owner.user_id]
    to_friend = answer(friend_sees, story, bot, "I bolt the shutters.")
    assert mentioned(to_friend) == [friend.user_id]
    owner_sees.wait_for(lambda: any(m.event_id == to_friend.event_id and m.failure is None for m in owner_sees.seen),
                        what="the owner reading the reply to the friend")
    friend_sees.wait_for(lambda: any(m.event_id == to_owner.event_id and m.failure is None for m in friend_sees.seen),
                         what="the friend reading the reply to the owner")
    prompt = "\n".join(str(m.get("content", "")) for m in fake_openai.requests_for(purpose="narrate")[-1].messages)
    assert "Tobin Reyes" in prompt and "Mara Vell" in prompt
    assert "Players: Tobin Reyes and Mara Vell" in notice(friend_sees, story, bot, "!status", "You play: **Mara Vell**")

    # Each a witness: only the owner was there when Odalys was named.
    assert "Odalys" in notice(owner_sees, story, bot, "!memory you odalys", "You remember:")
    assert "You remember nothing about “odalys”" in notice(friend_sees, story, bot, "!memory you odalys", "remember nothing")
    assert "shutters" in notice(friend_sees, story, bot, "!memory you shutters", "You remember:")

    # A third character invited mid-story knows nothing said before it came.
    owner_sees.send_text(story, "!invite ilse")
    owner_sees.wait_for(lambda: [m for m in character_lines(owner_sees, story, bot) if m.sender_name == "Ilse Varga"],
                        timeout_s=90, what="Ilse's entrance")
    to_ilse = answer(friend_sees, story, bot, "Ilse, what brings you here?")
    assert to_ilse.sender_name == "Ilse Varga" and mentioned(to_ilse) == [friend.user_id]
    ilse_prompts = [r for r in fake_openai.requests_for(purpose="narrate") if r.system_prompt.startswith("You are Ilse Varga")]
    assert len(ilse_prompts) == 2  # the entrance and the answer
    for request in ilse_prompts:
        said_before = [word for word in ("Odalys", "lamp", "shutters") if word in str(request.messages)]
        assert not said_before, [str(request.messages)[max(0, str(request.messages).find(w) - 300):][:400] for w in said_before]

    # In rounds, both players' lines are answered by one reply that mentions them both.
    notice(owner_sees, story, bot, "!rounds on", "Rounds are on")
    before = {m.event_id for m in character_lines(owner_sees, story, bot)}
    owner_sees.send_text(story, "I take the left path.")
    friend_sees.send_text(story, "I take the right path.")
    owner_sees.wait_for(lambda: [m for m in character_lines(owner_sees, story, bot) if m.event_id not in before], timeout_s=90,
                        what="the round's reply")
    owner_sees.pump(3)
    (round_reply,) = [m for m in character_lines(owner_sees, story, bot) if m.event_id not in before]
    assert mentioned(round_reply) == sorted([owner.user_id, friend.user_id])
    round_request = fake_openai.requests_for(purpose="narrate")[-1]
    assert "left path" in str(round_request.messages) and "right path" in str(round_request.messages)
    assert "Rounds are off" in notice(owner_sees, story, bot, "!rounds off", "Rounds are off")

    # A user who may not use the bot cannot play: `!invite` refuses, an Element invite is withdrawn.
    stranger = MatrixUser(world.synapse.url, world.synapse.register("stranger"))
    world.users.append(stranger)
    assert "not on this bot's list of allowed users" in notice(owner_sees, story, bot, f"!invite {stranger.user_id}", "cannot play")
    owner._call("POST", f"/_matrix/client/v3/rooms/{story}/invite", json={"user_id": stranger.user_id})
    told(owner_sees, story, bot, f"{stranger.user_id} cannot play here")
    owner.wait_for(lambda: owner.members(story).get(stranger.user_id) == "leave", what="the stranger's invite withdrawn")

    # The owner removes the friend: they no longer play.
    assert "removed from the story" in notice(owner_sees, story, bot, f"!remove {friend.user_id}", "removed")
    owner.wait_for(lambda: owner.members(story).get(friend.user_id) == "leave", what="the friend removed")
    assert "Players:" not in notice(owner_sees, story, bot, "!status", "You play: **Tobin Reyes**")
    assert not [m for m in fake_openai.requests_for(purpose="narrate") if "stranger" in str(m.messages)]


@pytest.mark.timeout(300)
@pytest.mark.on_both_backends
def test_after_a_restart_the_players_are_those_the_rooms_membership_says(start_bot, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    """Even with the cache lost: who plays, and that the room answers in rounds, come from the room itself."""
    bot: RunningBot = start_bot(llm=openai_llm(fake_openai))
    owner, leaving, coming = bot.player(), bot.player(), bot.player()
    named(leaving, "Ines Dray")
    named(coming, "Cal Brandt")
    _, _, story = onboard(bot, owner)
    owner.wait_for(lambda: owner.final_texts(story, bot.user_id), what="the greeting")
    ask(owner, story, bot.user_id, f"!invite {leaving.user_id}", "Invited")
    leaving.wait_for(lambda: story in leaving.invites, what="the invite")
    leaving.join(story)
    ask(owner, story, bot.user_id, "!status", "Players: ")
    say_and_wait(leaving, story, bot, "I came to help.", "I came to help.")
    ask(owner, story, bot.user_id, "!rounds on", "Rounds are on")
    assert owner.state_event(story, "org.rpbot.room")["rounds"] is True

    assert bot.process.stop() == 0
    bot.lose_cache()
    config = bot.process.config_path
    config.write_text(config.read_text().replace("[matrix]\n", "[matrix]\nround_window_s = 3\n"))
    unheard = leaving.send_text(story, "One more thing before I go.")
    owner._call("POST", f"/_matrix/client/v3/rooms/{story}/kick", json={"user_id": leaving.user_id, "reason": "Thanks, Ines."})
    owner._call("POST", f"/_matrix/client/v3/rooms/{story}/invite", json={"user_id": coming.user_id})  # Element's invite
    coming.join(story)
    coming.send_text(story, "Hello, I am new here.")
    bot.process.start()

    coming.wait_for(lambda: any("Hello, I am new here." in t for t in coming.final_texts(story, bot.user_id).values()),
                    timeout_s=60, what="the answer to the friend who came while the bot was down (the round's time up)")
    assert "Rounds are on" in ask(owner, story, bot.user_id, "!rounds", "Rounds are")
    status = ask(owner, story, bot.user_id, "!status", "Players: ")
    assert "Cal Brandt" in status and "Ines Dray" not in status
    assert not [r for r in fake_openai.requests_for(purpose="narrate") if "One more thing" in r.player_line]
    told_once = [t for t in owner.final_texts(story, bot.user_id).values() if "Only the players of this story are heard" in t]
    assert len(told_once) == 1 and unheard
