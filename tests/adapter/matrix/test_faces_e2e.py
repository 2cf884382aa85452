"""Faces and links against a real Synapse: room avatars, the speaker's face as the bot's member event,
per-message profiles, pills, one upload per image; the bot's own face, set only when it differs; and
Element's room settings in story rooms, old ones included."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from adapter.devserver import RegisteredUser
from adapter.matrix.own_profile import DEFAULT_PORTRAIT
from tests.adapter.matrix.conftest import onboard
from tests.adapter.matrix.test_requests_per_turn import bot_requests
from tests.adapter.matrix.test_restart_persistence import openai_llm, say_and_wait
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.matrix_user import MatrixUser

pytestmark = pytest.mark.synapse

PROFILE = "com.beeper.per_message_profile"
HIDDEN_SWITCHES = {"showDisplaynameChanges": False, "showAvatarChanges": False}
ROOM_ID = re.compile(r"![A-Za-z0-9._=\-]+:[A-Za-z0-9.\-]+|![A-Za-z0-9_\-]{43}")  # versions 1-11, and 12 (a hash, no server)
MATRIX_TO = re.compile(r"https://matrix\.to/#/![^\s)\"<]+")


def avatar(player: MatrixUser, room_id: str) -> str:
    url = player.state_event(room_id, "m.room.avatar")["url"]
    assert url.startswith("mxc://")
    return url


def download(player: MatrixUser, mxc: str) -> bytes:
    server, media_id = mxc.removeprefix("mxc://").split("/", 1)
    response = player.http.get(f"/_matrix/client/v1/media/download/{server}/{media_id}")
    response.raise_for_status()
    return response.content


def uploads(bot) -> int:
    requests = bot_requests(bot.server.server.access_log.read_text(), bot.user_id)
    return sum(1 for method, path in requests if method == "POST" and path.endswith("/upload"))


def raw_room_ids(text: str) -> list[str]:
    """Room ids in `text` outside matrix.to links."""
    return [match.group(0) for match in ROOM_ID.finditer(MATRIX_TO.sub("", text))]


def test_rooms_and_replies_have_faces_and_messages_link_rooms_as_pills(start_bot, fake_openai: FakeOpenAIServer) -> None:
    bot = start_bot(llm=openai_llm(fake_openai))
    player = bot.player()
    space_id, lobby, story = onboard(bot, player)

    space_face, lobby_face, story_face = avatar(player, space_id), avatar(player, lobby), avatar(player, story)
    assert len({space_face, lobby_face, story_face}) == 3
    for mxc in (space_face, lobby_face, story_face):
        assert download(player, mxc).startswith(b"\x89PNG")

    host = player.state_event(story, "org.rpbot.room")
    greeting_event = player.wait_for(lambda: player.messages_from(story, bot.user_id), what="the greeting")[0]
    greeting, greeting_id = greeting_event["content"], greeting_event["event_id"]
    profile = greeting[PROFILE]
    assert profile["avatar_url"] == story_face and profile["id"] and profile["displayname"] and "has_fallback" not in profile
    assert not greeting["body"].startswith(profile["displayname"]) and "<strong" not in greeting["formatted_body"]
    assert host["chat_id"]
    # The bot speaks in the story room as its host: its member event there carries the host's name and face.
    member = player.state_event(story, "m.room.member", bot.user_id)
    assert (member["displayname"], member["avatar_url"]) == (profile["displayname"], story_face)

    say_and_wait(player, story, bot, "Hello there.", "Echo: Hello there.")
    for event in player.messages_from(story, bot.user_id):
        content = event["content"].get("m.new_content", event["content"])
        if content.get("msgtype") == "m.text":
            assert content[PROFILE]["id"] == profile["id"] and content[PROFILE]["avatar_url"] == story_face
            assert content["m.mentions"] == {}
    after_greeting = player.timeline[story][[e["event_id"] for e in player.timeline[story]].index(greeting_id) :]
    assert [e for e in after_greeting if e["type"] == "m.room.member" and e["state_key"] == bot.user_id] == []  # one character: no switch

    # Every room named to the player is a matrix.to pill; no raw room id anywhere.
    player.send_text(lobby, "!new odile")
    player.wait_for(lambda: any("matrix.to" in e["content"]["body"] for e in player.messages_from(lobby, bot.user_id)), what="the new story's link")
    told = [e["content"] for room in (player.invite_room, lobby, story) for e in player.messages_from(room, bot.user_id)]
    assert told
    for content in told:
        for field in ("body", "formatted_body"):
            assert not raw_room_ids(content.get(field, "")), content
    welcome = player.messages_from(player.invite_room, bot.user_id)[0]["content"]
    assert f'href="https://matrix.to/#/{space_id}?via=localhost"' in welcome["formatted_body"]
    assert uploads(bot) == 5  # the bot's own portrait, the Space, the Lobby, the first host and Odile: each once

    assert bot.process.stop() == 0
    bot.process.start()
    player.send_text(lobby, "!new odile")  # a face uploaded before the restart
    player.wait_for(lambda: len(player.hierarchy(space_id)) == 5, timeout_s=60, what="a third story")
    say_and_wait(player, story, bot, "After the restart.", "Echo: After the restart.")
    assert uploads(bot) == 5  # a restart uploads nothing again


def card_png(card: dict, size: tuple[int, int], color: str) -> bytes:
    info = PngInfo()
    info.add_text("chara", base64.b64encode(json.dumps(card).encode()).decode())
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_a_character_imported_from_a_png_card_wears_the_cards_picture(start_bot, fake_openai: FakeOpenAIServer) -> None:
    bot = start_bot(llm=openai_llm(fake_openai))
    player = bot.player()
    space_id, lobby, _ = onboard(bot, player)
    card = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Nyx Aldergrove", "description": "A cartographer.",
            "personality": "precise", "scenario": "a map room", "first_mes": "You're late."}}
    url = player.upload(card_png(card, (400, 600), "teal"), "nyx.png", "image/png")
    file_event = player.send_content(lobby, {"msgtype": "m.image", "body": "nyx.png", "url": url})
    player.send_content(lobby, {"msgtype": "m.text", "body": "!import", "m.relates_to": {"m.in_reply_to": {"event_id": file_event}}})
    player.wait_for(lambda: any("Imported" in e["content"]["body"] for e in player.messages_from(lobby, bot.user_id)), what="the import")

    player.send_text(lobby, "!new nyx")
    player.wait_for(lambda: len(player.hierarchy(space_id)) == 4, what="Nyx's story room")
    room = next(r["room_id"] for r in player.hierarchy(space_id) if r.get("name") == "Nyx Aldergrove")
    player.join(room)
    face = Image.open(io.BytesIO(download(player, avatar(player, room))))
    assert face.size == (256, 256) and face.convert("RGB").getpixel((128, 128)) == (0, 128, 128)  # the card's teal, squared
    assert "chara" not in face.info  # the card's text is not re-published with its picture
    greeting = player.wait_for(lambda: player.messages_from(room, bot.user_id), what="Nyx's greeting")[0]["content"]
    assert greeting[PROFILE]["avatar_url"] == avatar(player, room)


def as_the_bot(bot) -> MatrixUser:
    """The bot's own account, from its saved session (as an operator with its token would act)."""
    session = json.loads((bot.process.config_path.parent / "data" / "session.json").read_text())
    account = RegisteredUser(session["user_id"], session["user_id"][1:].split(":")[0], "", session["access_token"], session["device_id"])
    return MatrixUser(bot.server.url, account)


def profile_changes(bot) -> int:
    requests = bot_requests(bot.server.server.access_log.read_text(), bot.user_id)
    return sum(1 for method, path in requests if method == "PUT" and "/profile/" in path)


def test_the_bot_has_its_own_face_set_only_when_it_differs(start_bot) -> None:
    bot = start_bot()
    player = bot.player()
    own = player._call("GET", f"/_matrix/client/v3/profile/{bot.user_id}")
    assert download(player, own["avatar_url"]) == DEFAULT_PORTRAIT.read_bytes()  # not a bare letter
    assert own["displayname"] == bot.user_id[1:].split(":")[0]  # the account keeps its own name
    assert profile_changes(bot) == 1 and uploads(bot) == 1
    _, lobby, _ = onboard(bot, player)
    assert player.state_event(lobby, "m.room.member", bot.user_id)["avatar_url"] == own["avatar_url"]
    uploaded = uploads(bot)

    assert bot.process.stop() == 0
    bot.process.start()
    assert profile_changes(bot) == 1 and uploads(bot) == uploaded  # the same face: nothing set, nothing uploaded

    picture = bot.process.config_path.parent / "own.png"
    Image.new("RGB", (64, 64), "crimson").save(picture, format="PNG")
    config = bot.process.config_path
    bot.process.stop()
    config.write_text(config.read_text().replace("[matrix]\n", f'[matrix]\navatar = "{picture}"\n'))
    bot.process.start()
    own = player._call("GET", f"/_matrix/client/v3/profile/{bot.user_id}")
    assert download(player, own["avatar_url"]) == picture.read_bytes()
    assert profile_changes(bot) == 2 and uploads(bot) == uploaded + 1
    bot.process.stop()
    bot.lose_cache()  # the cache lost, with it the picture's URI
    bot.process.start()
    assert profile_changes(bot) == 2 and uploads(bot) == uploaded + 1  # the account's picture is recognised by its bytes


def test_rooms_an_older_version_made_are_brought_up_to_date_at_start_up(start_bot) -> None:
    """Story rooms get Element's settings (players cannot change them) and the owner's power to remove a
    player; a Lobby invite left waiting is withdrawn."""
    bot = start_bot()
    player = bot.player()
    _, _, story = onboard(bot, player)
    assert player.state_event(story, "im.vector.web.settings") == HIDDEN_SWITCHES
    assert player.send_state(story, "im.vector.web.settings", {}).status_code == 403  # the bot's, like its other state

    # As an older version left them: no settings, power levels that let the player write them, and
    # (for a second player) the Lobby invited as well as joinable from the Space.
    newcomer = bot.player()
    newcomer.invite_room = newcomer.create_room(invite=[bot.user_id])
    their_space = newcomer.wait_for_invite(room_type="m.space", timeout_s=60)
    newcomer.join(their_space)
    their_lobby = newcomer.wait_for(lambda: next((r["room_id"] for r in newcomer.hierarchy(their_space) if r.get("name") == "Lobby"), None),
                                    what="the newcomer's Lobby")
    assert bot.process.stop() == 0
    as_bot = as_the_bot(bot)
    levels = as_bot.state_event(story, "m.room.power_levels")
    del levels["events"]["im.vector.web.settings"]
    levels["kick"] = 100  # nor let the owner remove a player
    as_bot.send_state(story, "m.room.power_levels", levels).raise_for_status()
    as_bot.send_state(story, "im.vector.web.settings", {}).raise_for_status()
    as_bot._call("POST", f"/_matrix/client/v3/rooms/{their_lobby}/invite", json={"user_id": newcomer.user_id})
    newcomer.wait_for(lambda: their_lobby in newcomer.invites, what="the old Lobby invite")

    bot.process.start()
    player.wait_for(lambda: player.state_event(story, "im.vector.web.settings") == HIDDEN_SWITCHES, what="the settings written again")
    levels = player.state_event(story, "m.room.power_levels")
    assert levels["events"]["im.vector.web.settings"] == 100 and levels["kick"] == 50
    assert player.send_state(story, "im.vector.web.settings", {}).status_code == 403
    newcomer.wait_for(lambda: their_lobby not in newcomer.invites, what="the old Lobby invite withdrawn")
    newcomer.join(their_lobby)  # still one click away, from the Space
