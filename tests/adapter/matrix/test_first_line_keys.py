"""A new encrypted room's first line reaches the player it was made for.

A sync can show a room the bot just made before the homeserver has written all of it: the bot's
join without the player's invite yet. Sent then, the first line's room key would go to nobody
but the bot, and the player could never read the greeting. The sender waits until the sync
shows the members the room was made with, and their devices are known, before the first send.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nio import MatrixRoom, RoomCreateResponse, RoomSendResponse

from adapter.matrix.outgoing import CreateRoom, MatrixSender, SendMessage

BOT, PLAYER, ROOM = "@rpbot:localhost", "@player:localhost", "!story:localhost"
ENCRYPTED = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}


class Olm:
    def __init__(self) -> None:
        self.users_for_key_query: set[str] = set()
        self.tracked_users: set[str] = {BOT}


class HalfSyncedClient:
    """Stands in for nio's client: createRoom answers at once; the room and its members come with later syncs."""

    def __init__(self) -> None:
        self.olm = Olm()
        self.rooms: dict[str, MatrixRoom] = {}
        self.sent_to: list[set[str]] = []  # the members the room key would be shared with, at each send

    async def room_create(self, **_: Any) -> RoomCreateResponse:
        return RoomCreateResponse(ROOM)

    def sync_shows(self, *members: tuple[str, bool]) -> None:
        """A sync shows the room with these (user, invited) members, as nio takes it in."""
        room = self.rooms.setdefault(ROOM, MatrixRoom(ROOM, BOT, encrypted=True))
        for user_id, invited in members:
            room.add_member(user_id, None, None, invited=invited)
        self.olm.users_for_key_query |= set(room.users) - self.olm.tracked_users

    def keys_queried(self) -> None:
        self.olm.tracked_users |= self.olm.users_for_key_query
        self.olm.users_for_key_query.clear()

    async def room_send(self, room_id: str, *_: Any, **__: Any) -> RoomSendResponse:
        self.sent_to.append({user for user in self.rooms[room_id].users if user in self.olm.tracked_users})
        return RoomSendResponse("$greeting", room_id)


async def test_the_first_line_waits_for_the_invite_the_room_was_made_with() -> None:
    client = HalfSyncedClient()
    sender = MatrixSender(client)  # type: ignore[arg-type]
    room_id = await sender.create_room(CreateRoom({"invite": [PLAYER], "initial_state": [ENCRYPTED]}))
    client.sync_shows((BOT, False))  # the bot's join, not yet the player's invite

    greeting = asyncio.create_task(sender.send(SendMessage(room_id, {"msgtype": "m.text", "body": "Welcome."}, "txn1")))
    await asyncio.sleep(0.3)
    assert not client.sent_to  # not sent to a room the player is not in yet
    client.sync_shows((PLAYER, True))
    await asyncio.sleep(0.3)
    assert not client.sent_to  # nor before the player's devices are known
    client.keys_queried()

    assert await asyncio.wait_for(greeting, 5) == "$greeting"
    assert client.sent_to == [{BOT, PLAYER}]


async def test_a_room_made_without_invites_is_sent_to_at_once() -> None:
    client = HalfSyncedClient()
    sender = MatrixSender(client)  # type: ignore[arg-type]
    room_id = await sender.create_room(CreateRoom({"invite": [], "initial_state": [ENCRYPTED]}))
    client.sync_shows((BOT, False))
    assert await asyncio.wait_for(sender.send(SendMessage(room_id, {"msgtype": "m.text", "body": "Hello."}, "txn2")), 1) == "$greeting"


class SessionDroppedWhileSharing(HalfSyncedClient):
    """nio drops a room's outbound session when a member joins; landing while it shares that session,
    its room_send fails with a KeyError before anything is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    async def room_send(self, room_id: str, *args: Any, **kwargs: Any) -> RoomSendResponse:
        self.tries += 1
        if self.tries == 1:
            raise KeyError(room_id)
        return await super().room_send(room_id, *args, **kwargs)


async def test_a_line_whose_room_key_was_dropped_while_being_shared_is_sent_with_a_new_one() -> None:
    client = SessionDroppedWhileSharing()
    sender = MatrixSender(client)  # type: ignore[arg-type]
    room_id = await sender.create_room(CreateRoom({"invite": [PLAYER], "initial_state": [ENCRYPTED]}))
    client.sync_shows((BOT, False), (PLAYER, True))
    client.keys_queried()
    assert await asyncio.wait_for(sender.send(SendMessage(room_id, {"msgtype": "m.text", "body": "Welcome."}, "txn3")), 5) == "$greeting"
    assert client.tries == 2 and client.sent_to == [{BOT, PLAYER}]
