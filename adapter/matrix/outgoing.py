"""What the bot sends to Matrix, and the one place that sends it.

Handlers decide and return `OutgoingEvent`s; `MatrixSender` performs them with
nio, waiting out rate limits (`M_LIMIT_EXCEEDED`, honouring `retry_after_ms`)
inside the task of the room concerned, so one room's wait never blocks another
room or the sync loop. nio's own 429 loop is switched off
(`max_limit_exceeded=0`) so that the waits happen here, where they are visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    EncryptionError,
    ErrorResponse,
    LocalProtocolError,
    MegolmEvent,
    RoomCreateError,
    RoomCreateResponse,
    RoomLeaveResponse,
    UploadResponse,
)
from nio.api import Api

from adapter.errors import AdapterError

log = logging.getLogger(__name__)

RATE_LIMITED = "M_LIMIT_EXCEEDED"


@dataclass(frozen=True)
class SendMessage:
    room_id: str
    content: dict[str, Any]
    txn_id: str
    event_type: str = "m.room.message"


@dataclass(frozen=True)
class SendState:
    room_id: str
    event_type: str
    content: dict[str, Any]
    state_key: str = ""


@dataclass(frozen=True)
class Redact:
    """Remove a message from the room (a reply the story took back); `txn_id` keeps a replay from redacting twice."""

    room_id: str
    event_id: str
    txn_id: str
    reason: str = ""


@dataclass(frozen=True)
class SetTyping:
    room_id: str
    typing: bool


@dataclass(frozen=True)
class LeaveRoom:
    room_id: str
    reason: str = ""


@dataclass(frozen=True)
class Invite:
    """Invite a user to a room (a friend to a story, on its owner's `!invite`)."""

    room_id: str
    user_id: str


@dataclass(frozen=True)
class Kick:
    """Remove a user from a room, or withdraw their invite, saying why."""

    room_id: str
    user_id: str
    reason: str = ""


@dataclass(frozen=True)
class RequestRoomKey:
    """Ask the sender's devices for the key of a message we cannot decrypt yet (best effort)."""

    event: MegolmEvent


@dataclass(frozen=True)
class SetOwnProfile:
    """Change the bot account's own display name and/or avatar (None: leave it). The homeserver then
    rewrites the bot's member event in every room it is in (see `adapter.matrix.own_profile`)."""

    displayname: str | None = None
    avatar_url: str | None = None


@dataclass(frozen=True)
class CreateRoom:
    """A createRoom request; `room_create` keyword arguments of nio."""

    kwargs: dict[str, Any] = field(default_factory=dict)


OutgoingEvent = SendMessage | SendState | SetTyping | LeaveRoom | RequestRoomKey | Redact | SetOwnProfile | Invite | Kick


class SendFailed(AdapterError, RuntimeError):
    """Matrix refused an outgoing event for a reason other than a rate limit."""

    player_summary = "The homeserver refused something I tried to send"

    def __init__(self, what: str, response: Any) -> None:
        super().__init__(f"{what} failed: {getattr(response, 'status_code', '')} {getattr(response, 'message', response)}")
        self.response = response


def txn_id_for(source_event_id: str, purpose: str) -> str:
    """A transaction id derived from the event being answered, so a replay never double-sends."""
    digest = hashlib.sha256(f"{source_event_id}\x00{purpose}".encode()).hexdigest()[:32]
    return f"rpbot.{digest}"


def _is_rate_limited(response: Any) -> bool:
    return isinstance(response, ErrorResponse) and response.status_code in (RATE_LIMITED, 429, "429")


class MatrixSender:
    """Performs outgoing events for every handler; the only code that writes to Matrix."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        max_rate_limit_waits: int = 50,
        on_rate_limited: Callable[[str, float], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.max_rate_limit_waits = max_rate_limit_waits
        self.on_rate_limited = on_rate_limited
        self._invited_at_creation: dict[str, set[str]] = {}  # encrypted rooms we made, until their first line

    async def _with_rate_limit(
        self,
        what: str,
        room_id: str,
        call: Callable[[], Awaitable[Any]],
        on_first_wait: Callable[[float], Awaitable[None]] | None = None,
    ) -> Any:
        for attempt in range(self.max_rate_limit_waits):
            response = await call()
            if not _is_rate_limited(response):
                return response
            wait_s = (getattr(response, "retry_after_ms", None) or 5000) / 1000
            log.warning("rate limited on %s in %s; waiting %.1fs", what, room_id, wait_s)
            if self.on_rate_limited is not None:
                await self.on_rate_limited(room_id, wait_s)
            if attempt == 0 and on_first_wait is not None:
                try:
                    await on_first_wait(wait_s)
                except Exception:
                    log.exception("could not tell the player about a rate limit")
            await asyncio.sleep(wait_s)
        raise SendFailed(what, response)

    async def wait_for_room(self, room_id: str, timeout_s: float = 30.0) -> None:
        """Wait until the sync loop has seen `room_id` (nio cannot send to a room it has not synced)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while room_id not in self.client.rooms:
            if asyncio.get_running_loop().time() > deadline:
                raise SendFailed(f"waiting for {room_id} to sync", None)
            await asyncio.sleep(0.05)

    async def wait_for_new_members_keys(self, room_id: str, timeout_s: float = 10.0) -> None:
        """In an encrypted room, wait until the members it was made with are shown by a sync (one can
        show a new room before the homeserver has written its invites) and the devices of members the
        bot has never tracked are known (the sync loop queries them right after the sync that shows
        them), so that the message's room key reaches them: a new story room's first line would
        otherwise race both."""
        olm = getattr(self.client, "olm", None)
        room = self.client.rooms.get(room_id)
        invited = self._invited_at_creation.pop(room_id, set())
        if not olm or room is None or not room.encrypted:
            return
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (invited - set(room.users)) or (set(room.users) & olm.users_for_key_query) - olm.tracked_users:
            if asyncio.get_running_loop().time() > deadline:
                log.warning("sending in %s before the devices of its new members are known", room_id)
                return
            await asyncio.sleep(0.05)

    async def _room_send(self, room_id: str, event_type: str, content: dict[str, Any], txn_id: str) -> Any:
        try:
            return await self.client.room_send(room_id, event_type, content, tx_id=txn_id, ignore_unverified_devices=True)
        except KeyError:
            # nio drops a room's outbound session when a member comes or goes; if that lands while it
            # shares the session, it fails with a KeyError before sending. Again: a new session is made.
            log.info("the room key of %s changed while it was shared; sending again", room_id)
            return await self.client.room_send(room_id, event_type, content, tx_id=txn_id, ignore_unverified_devices=True)

    async def send(self, event: OutgoingEvent) -> str | None:
        """Perform one outgoing event; return the new event id where there is one."""
        match event:
            case SendMessage(room_id, content, txn_id, event_type):
                await self.wait_for_room(room_id)
                await self.wait_for_new_members_keys(room_id)
                response = await self._with_rate_limit("send", room_id, lambda: self._room_send(room_id, event_type, content, txn_id))
                if isinstance(response, ErrorResponse):
                    raise SendFailed("send", response)
                return response.event_id
            case SendState(room_id, event_type, content, state_key):
                response = await self._with_rate_limit(
                    "state", room_id, lambda: self.client.room_put_state(room_id, event_type, content, state_key)
                )
                if isinstance(response, ErrorResponse):
                    raise SendFailed(f"state {event_type}", response)
                return response.event_id
            case Redact(room_id, event_id, txn_id, reason):
                response = await self._with_rate_limit(
                    "redact", room_id, lambda: self.client.room_redact(room_id, event_id, reason or None, tx_id=txn_id)
                )
                if isinstance(response, ErrorResponse):
                    raise SendFailed("redact", response)
                return response.event_id
            case SetTyping(room_id, typing):
                # Typing notices are a courtesy: never wait for a rate limit on one.
                await self.client.room_typing(room_id, typing_state=typing, timeout=30000)
                return None
            case Invite(room_id, user_id):
                response = await self._with_rate_limit("invite", room_id, lambda: self.client.room_invite(room_id, user_id))
                if isinstance(response, ErrorResponse):
                    raise SendFailed("invite", response)
                return None
            case Kick(room_id, user_id, reason):
                response = await self._with_rate_limit("kick", room_id, lambda: self.client.room_kick(room_id, user_id, reason or None))
                if isinstance(response, ErrorResponse):
                    raise SendFailed("kick", response)
                return None
            case LeaveRoom(room_id, reason):
                await self._with_rate_limit("leave", room_id, lambda: self._leave(room_id, reason))
                return None
            case SetOwnProfile(displayname, avatar_url):
                if displayname is not None:
                    await self._profile_field("displayname", lambda: self.client.set_displayname(displayname))
                if avatar_url is not None:
                    await self._profile_field("avatar_url", lambda: self.client.set_avatar(avatar_url))
                return None
            case RequestRoomKey(encrypted):
                try:
                    await self.client.request_room_key(encrypted)
                except (EncryptionError, LocalProtocolError, aiohttp.ClientError, TimeoutError) as exc:
                    # Asked already, or the homeserver away: the sender may share the key anyway.
                    log.debug("room key request for %s not sent: %s", encrypted.event_id, exc)
                return None
        raise TypeError(f"not an outgoing event: {event!r}")

    async def _profile_field(self, field_name: str, call: Callable[[], Awaitable[Any]]) -> None:
        response = await self._with_rate_limit(f"profile {field_name}", "(profile)", call)
        if isinstance(response, ErrorResponse):
            raise SendFailed(f"profile {field_name}", response)

    async def _leave(self, room_id: str, reason: str) -> Any:
        # nio's room_leave takes no reason; the spec's leave endpoint does.
        method, path = Api.room_leave(self.client.access_token, room_id)
        return await self.client._send(RoomLeaveResponse, method, path, Api.to_json({"reason": reason} if reason else {}))

    async def send_all(self, events: list[OutgoingEvent]) -> list[str | None]:
        return [await self.send(event) for event in events]

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        """Upload a file to the media repository (unencrypted: avatars are public to the room); return its mxc URI."""
        response = await self._with_rate_limit("upload", "(media)", lambda: self._upload(data, content_type, filename))
        if not isinstance(response, UploadResponse):
            raise SendFailed("upload", response)
        return response.content_uri

    async def _upload(self, data: bytes, content_type: str, filename: str) -> Any:
        response, _ = await self.client.upload(
            lambda *_: io.BytesIO(data), content_type=content_type, filename=filename, filesize=len(data)
        )
        return response

    async def join(self, room_id: str) -> bool:
        """Join `room_id`, waiting out rate limits; False if the homeserver refuses for another reason."""
        response = await self._with_rate_limit("join", room_id, lambda: self.client.join(room_id))
        if isinstance(response, ErrorResponse):
            log.warning("could not join %s: %s", room_id, response.message)
            return False
        return True

    async def create_room(self, request: CreateRoom, *, notify_room: str | None = None) -> str:
        """Create a room; if the homeserver makes us wait, say so once in `notify_room`."""

        async def tell_player(wait_s: float) -> None:
            if notify_room is not None:
                text = (
                    f"The homeserver is pacing how fast I can make rooms: the next one appears in about {wait_s:.0f} s."
                )
                key = hashlib.sha256(repr(sorted(request.kwargs.items(), key=str)).encode()).hexdigest()
                await self.send(SendMessage(notify_room, {"msgtype": "m.notice", "body": text}, txn_id_for(key, "room-delay")))

        response = await self._with_rate_limit(
            "createRoom", "(new room)", lambda: self.client.room_create(**request.kwargs), on_first_wait=tell_player
        )
        if isinstance(response, RoomCreateError) or not isinstance(response, RoomCreateResponse):
            raise SendFailed("createRoom", response)
        encrypted = any(state.get("type") == "m.room.encryption" for state in request.kwargs.get("initial_state", []))
        if encrypted and request.kwargs.get("invite"):
            self._invited_at_creation[response.room_id] = set(request.kwargs["invite"])
        return response.room_id

