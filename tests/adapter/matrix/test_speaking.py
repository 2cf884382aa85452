"""The face the bot wears in a room, decided from the room's state as the sync shows it (nio's rooms),
switched only on a change of speaker; and whom a character's line mentions."""

from __future__ import annotations

import asyncio
from typing import Any

from nio import MatrixRoom, SyncResponse

from adapter.matrix.outgoing import SendState
from adapter.matrix.render import SpeakerProfile
from adapter.matrix.speaking import Face, RoomFaces, mentions_for

BOT = "@rpbot:localhost"
ROOM = "!story:localhost"
WREN = SpeakerProfile("wren-halloway", "Wren Halloway", "mxc://localhost/wren")
ODILE = SpeakerProfile("odile-marchetti", "Captain Odile Marchetti", "mxc://localhost/odile")


class Client:
    """nio's client as RoomFaces reads it: its user id and the rooms the sync built."""

    def __init__(self) -> None:
        self.user_id = BOT
        self.rooms: dict[str, MatrixRoom] = {}

    def room_with_bot_as(self, room_id: str, name: str, avatar: str | None) -> MatrixRoom:
        room = MatrixRoom(room_id, BOT)
        room.add_member(BOT, name, avatar)
        room.add_member("@tobin:localhost", "Tobin Reyes", None)
        self.rooms[room_id] = room
        return room


class Sender:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.sent: list[Any] = []
        self.delay_s = delay_s

    async def send(self, event: Any) -> str:
        await asyncio.sleep(self.delay_s)
        self.sent.append(event)
        return f"$e{len(self.sent)}"


def switches(sender: Sender) -> list[str]:
    return [e.content["displayname"] for e in sender.sent if isinstance(e, SendState) and e.event_type == "m.room.member"]


def member_event_sync(room_id: str, displayname: str, avatar_url: str) -> SyncResponse:
    """A sync whose timeline holds the bot's member event in `room_id` (as the homeserver's rewrite after a profile change)."""
    event = {
        "type": "m.room.member", "state_key": BOT, "sender": BOT, "event_id": "$rewrite", "origin_server_ts": 1,
        "content": {"membership": "join", "displayname": displayname, "avatar_url": avatar_url},
        "unsigned": {"prev_content": {"membership": "join", "displayname": "Wren Halloway"}},
    }
    room = {"timeline": {"events": [event], "limited": False, "prev_batch": "p"}, "state": {"events": []},
            "ephemeral": {"events": []}, "account_data": {"events": []}, "summary": {}, "unread_notifications": {}}
    response = SyncResponse.from_dict({"next_batch": "s2", "rooms": {"join": {room_id: room}, "invite": {}, "leave": {}}})
    assert isinstance(response, SyncResponse)
    return response


async def speak(faces: RoomFaces, sender: Sender, profile: SpeakerProfile, line: str) -> None:
    async with faces.speaking(ROOM, profile):
        await sender.send(("line", profile.displayname, line))


async def test_a_one_character_room_already_wearing_its_host_sends_no_switch() -> None:
    client, sender = Client(), Sender()
    client.room_with_bot_as(ROOM, "Wren Halloway", "mxc://localhost/wren")  # as the room was made, or after a restart
    faces = RoomFaces(client, sender)
    for line in ("one", "two", "three"):
        await speak(faces, sender, WREN, line)
    assert switches(sender) == []


async def test_a_group_scene_switches_only_when_the_speaker_changes() -> None:
    client, sender = Client(), Sender()
    client.room_with_bot_as(ROOM, "Wren Halloway", "mxc://localhost/wren")
    faces = RoomFaces(client, sender)
    for profile in (WREN, ODILE, ODILE, WREN, WREN, ODILE):
        await speak(faces, sender, profile, "...")
    assert switches(sender) == ["Captain Odile Marchetti", "Wren Halloway", "Captain Odile Marchetti"]
    switch = sender.sent[1]
    assert (switch.room_id, switch.state_key) == (ROOM, BOT)
    assert switch.content == {"membership": "join", "displayname": "Captain Odile Marchetti", "avatar_url": "mxc://localhost/odile"}
    assert sender.sent[2] == ("line", "Captain Odile Marchetti", "...")  # the switch comes before the line


async def test_a_face_the_homeserver_rewrote_is_seen_and_switched_back_before_the_next_line() -> None:
    """Changing the account's own profile makes the homeserver rewrite the bot's member event in every room."""
    client, sender = Client(), Sender()
    room = client.room_with_bot_as(ROOM, "Wren Halloway", "mxc://localhost/wren")
    faces = RoomFaces(client, sender)
    await speak(faces, sender, ODILE, "a switch the sync has not shown yet")
    await speak(faces, sender, ODILE, "no second switch")
    assert switches(sender) == ["Captain Odile Marchetti"]

    response = member_event_sync(ROOM, "rpbot", "mxc://localhost/bot")
    room.handle_membership(response.rooms.join[ROOM].timeline.events[0])  # what nio does with the sync
    faces.seen_in_sync(response)
    assert faces.worn(ROOM) == Face("rpbot", "mxc://localhost/bot")
    await speak(faces, sender, ODILE, "after the rewrite")
    assert switches(sender) == ["Captain Odile Marchetti", "Captain Odile Marchetti"]


async def test_after_a_restart_the_face_comes_from_the_rooms_state_not_from_memory() -> None:
    client, sender = Client(), Sender()
    client.room_with_bot_as(ROOM, "Captain Odile Marchetti", "mxc://localhost/odile")  # the full-state sync of a new process
    await speak(RoomFaces(client, sender), sender, ODILE, "Odile again")
    await speak(RoomFaces(client, sender), sender, WREN, "Wren, in another new process")
    assert switches(sender) == ["Wren Halloway"]


async def test_two_characters_starting_lines_at_once_never_speak_under_each_others_face() -> None:
    client, sender = Client(), Sender(delay_s=0.01)
    client.room_with_bot_as(ROOM, "Wren Halloway", "mxc://localhost/wren")
    faces = RoomFaces(client, sender)
    await asyncio.gather(*(speak(faces, sender, profile, str(i)) for i, profile in enumerate([ODILE, WREN, ODILE, WREN])))
    worn = "Wren Halloway"
    for event in sender.sent:
        if isinstance(event, SendState):
            worn = event.content["displayname"]
        else:
            assert event[1] == worn, sender.sent


async def test_a_line_without_a_profile_and_a_room_not_synced_yet() -> None:
    client, sender = Client(), Sender()
    faces = RoomFaces(client, sender)
    async with faces.speaking(ROOM, None):
        pass
    assert sender.sent == []
    faces.assume(ROOM, Face.of(WREN))  # just made, wearing Wren in its initial state
    await speak(faces, sender, WREN, "the greeting")
    assert switches(sender) == []


def test_a_line_mentions_the_player_it_answers_only_where_several_players_are() -> None:
    client = Client()
    room = client.room_with_bot_as(ROOM, "Wren Halloway", None)
    assert mentions_for(client, ROOM, ("@tobin:localhost",)) == ()  # alone with the bot: no highlight on every reply
    room.add_member("@mara:localhost", "Mara", None, invited=True)
    assert mentions_for(client, ROOM, ("@tobin:localhost",)) == ()  # an invite is not a player in the room yet
    room.add_member("@ines:localhost", "Ines", None)
    assert mentions_for(client, ROOM, ("@tobin:localhost",)) == ("@tobin:localhost",)  # only the one it answers
    assert mentions_for(client, ROOM, ("@tobin:localhost", "@ines:localhost")) == ("@tobin:localhost", "@ines:localhost")  # a round
    assert mentions_for(client, ROOM, ()) == ()  # a line that answers no one (a greeting) mentions no one
