"""Who speaks in a story room: the face the bot wears there, switched before a character's line.

Clients show each line with the name and avatar its sender had in the room when it was sent (the
sender's `m.room.member` state at that event; Element starts a new group of messages when either
changes). So before a character's line the bot's own member event in that room carries the
character's name and portrait: set once in a one-character room (at its creation, in the
`createRoom` request's initial state), and switched in a group scene when the next line is another
character's. A switch is one state event, which the homeserver counts against the bot's message
rate limit (`rc_message`; a profile change of a member already joined is not a join, so `rc_joins`
does not apply): it is sent only when the room's face differs from the speaker's.

The room's current face is read from the room state nio keeps from the sync, so it is right after a
restart, after the cache is lost, and after the homeserver rewrote the bot's member events itself (it
does so in every joined room when the account's own profile changes). A switch the sync has not shown
yet is remembered until the next sync shows any member event of the bot in that room; until then it
overrides nio's view. A room's switch and the line it is for are sent under the room's lock, so
two characters starting lines at once (a guest's entrance, a reply) cannot swap faces in between.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from nio import RoomMemberEvent, SyncResponse

from adapter.matrix.outgoing import SendFailed, SendState
from adapter.matrix.render import SpeakerProfile
from core import KeyedLocks

log = logging.getLogger(__name__)

MEMBER_NAME_BYTES = 255  # room member names: the homeserver's limit is 256; MSC4144's 255 is kept for both


class _Sender(Protocol):
    async def send(self, event: Any) -> str | None: ...


@dataclass(frozen=True)
class Face:
    """A name and a picture the bot shows as its room member profile."""

    displayname: str
    avatar_url: str | None = None

    @classmethod
    def of(cls, profile: SpeakerProfile) -> Face:
        return cls(profile.displayname.encode()[:MEMBER_NAME_BYTES].decode(errors="ignore"), profile.avatar_url)

    def member_content(self) -> dict[str, Any]:
        """The bot's `m.room.member` content wearing this face. Without a picture the homeserver
        fills in the account's own avatar."""
        content: dict[str, Any] = {"membership": "join", "displayname": self.displayname}
        if self.avatar_url:
            content["avatar_url"] = self.avatar_url
        return content

    def shown_by(self, displayname: str | None, avatar_url: str | None) -> bool:
        """Whether a member profile with this name and avatar shows this face (any avatar will do for a face without one)."""
        return displayname == self.displayname and (self.avatar_url is None or avatar_url == self.avatar_url)


def initial_face_state(bot_user_id: str, face: Face) -> dict[str, Any]:
    """The bot's member event wearing `face`, for a `createRoom` request's initial state: the room
    starts with it (no separate state event, nothing counted against the rate limit)."""
    return {"type": "m.room.member", "state_key": bot_user_id, "content": face.member_content()}


class RoomFaces:
    """The face the bot wears in each room, and the switch before a character's line."""

    def __init__(self, client: Any, sender: _Sender) -> None:
        self.client = client  # nio's AsyncClient: its `rooms` hold the state the sync brought
        self.sender = sender
        self._unsynced: dict[str, Face] = {}  # switches (and new rooms) the sync has not shown yet
        self._locks = KeyedLocks()

    @property
    def bot_user_id(self) -> str:
        return str(self.client.user_id)

    def worn(self, room_id: str) -> Face | None:
        """The face the bot shows in `room_id` now; None when the room is not known yet."""
        if room_id in self._unsynced:
            return self._unsynced[room_id]
        room = self.client.rooms.get(room_id)
        member = room.users.get(self.bot_user_id) if room is not None else None
        if member is None:
            return None
        return Face(member.display_name or "", member.avatar_url)

    def assume(self, room_id: str, face: Face) -> None:
        """`room_id` was just made wearing `face` (in its initial state): known before the sync shows it."""
        if room_id not in self.client.rooms:
            self._unsynced[room_id] = face

    def seen_in_sync(self, response: SyncResponse) -> None:
        """The sync showed these rooms' member events of the bot: nio's view of them is current."""
        for room_id, info in response.rooms.join.items():
            if any(isinstance(e, RoomMemberEvent) and e.state_key == self.bot_user_id for e in [*info.state, *info.timeline.events]):
                self._unsynced.pop(room_id, None)

    @asynccontextmanager
    async def speaking(self, room_id: str, profile: SpeakerProfile | None) -> AsyncIterator[None]:
        """Wear `profile`'s face in `room_id` for what is sent inside (a character's new line)."""
        if profile is None:
            yield
            return
        async with self._locks.hold(room_id):
            await self._wear(room_id, Face.of(profile))
            yield

    async def _wear(self, room_id: str, face: Face) -> None:
        current = self.worn(room_id)
        if current is not None and face.shown_by(current.displayname, current.avatar_url):
            return
        try:
            await self.sender.send(SendState(room_id, "m.room.member", face.member_content(), state_key=self.bot_user_id))
        except SendFailed as exc:  # the line still goes out, under the face the room shows
            log.warning("could not switch to %s in %s: %s", face.displayname, room_id, exc)
            return
        self._unsynced[room_id] = face
        log.info("now speaking as %s", face.displayname, extra={"room_id": room_id})


def players_in(client: Any, room_id: str) -> list[str]:
    """The people other than the bot joined to `room_id`, as the sync shows them."""
    room = client.rooms.get(room_id)
    if room is None:
        return []
    return [user_id for user_id, member in room.users.items() if user_id != client.user_id and not member.invited]


def mentions_for(client: Any, room_id: str, answering: tuple[str, ...]) -> tuple[str, ...]:
    """Whom a character's line mentions on purpose: the players whose lines it answers, and only in
    a room where several players are present (there, it says whose lines are answered, and only
    they are notified). Alone with the player a mention would make every reply a highlight (a red
    badge) without telling them anything."""
    if not answering or len(players_in(client, room_id)) < 2:
        return ()
    return tuple(dict.fromkeys(answering))
