"""A player's E2EE client that treats devices as Element does in its default mode.

Element (matrix-js-sdk's Rust crypto, `OnlySignedDevicesIsolationMode`) shares room keys
only with devices their owner cross-signed, and refuses to show messages sent from other
devices (`UNSIGNED_SENDER_DEVICE`). This client does the same on top of matrix-nio:
before each send it blacklists every device of the room's members that is not signed by
its owner's self-signing key (read from `/keys/query` and checked here), and every message
it receives is kept as `Received`, showable only when the sending device is signed. It
sets up its own cross-signing first, as an Element user has.

`strict=False` is the old behaviour (all devices allowed), kept to show the difference.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
from nio import AsyncClient, AsyncClientConfig, MegolmEvent, RoomMessageText

from adapter.devserver import RegisteredUser
from adapter.matrix.cross_signing import AccountKeys, CrossSigningKeys, sign_device, upload_keys
from adapter.matrix.signatures import cross_signed_devices

UNSIGNED_SENDER_DEVICE = "UNSIGNED_SENDER_DEVICE"
UNDECRYPTABLE = "UNDECRYPTABLE"


@dataclass(frozen=True)
class Received:
    """A message as the client shows it: its text, or why it cannot show it."""

    room_id: str
    event_id: str
    sender: str
    body: str | None  # None when not shown
    problem: str | None  # None, UNSIGNED_SENDER_DEVICE or UNDECRYPTABLE
    sender_device: str | None


class ElementLikeClient:
    def __init__(self, homeserver: str, account: RegisteredUser, store: Path, *, strict: bool = True) -> None:
        self.account = account
        self.user_id = account.user_id
        self.strict = strict
        store.mkdir(parents=True, exist_ok=True)
        self.nio = AsyncClient(homeserver, account.user_id, device_id=account.device_id, store_path=str(store), config=AsyncClientConfig(encryption_enabled=True))
        self.nio.restore_login(account.user_id, account.device_id, account.access_token)
        self.http = httpx.AsyncClient(base_url=homeserver, headers={"Authorization": f"Bearer {account.access_token}"}, timeout=30)
        self._events: list[tuple[str, RoomMessageText | MegolmEvent]] = []
        self._keys: dict = {}
        self.nio.add_event_callback(self._on_message, (RoomMessageText, MegolmEvent))

    async def start(self, *, cross_sign: bool = True) -> "ElementLikeClient":
        """Upload device keys and, as Element does at first sign-in, set up cross-signing and sign this device."""
        await self.nio.keys_upload()
        if cross_sign:
            keys = CrossSigningKeys.generate()
            await upload_keys(self.http, self.user_id, keys, self.account.password)
            account = await AccountKeys(self.http, self.user_id).refresh()
            await sign_device(self.http, self.user_id, account.device(self.account.device_id), keys)
        await self.nio.sync(timeout=0, full_state=True)
        return self

    async def close(self) -> None:
        await self.nio.close()
        await self.http.aclose()

    async def _query(self, users: set[str]) -> dict:
        response = await self.http.post("/_matrix/client/v3/keys/query", json={"device_keys": {u: [] for u in users}})
        response.raise_for_status()
        self._keys = response.json()
        return self._keys

    def devices_of(self, user_id: str) -> set[str]:
        """The devices of `user_id` this client knows (and would share keys with, if signed)."""
        return set(self.nio.device_store[user_id]) if user_id in self.nio.device_store.users else set()

    def _device_of(self, sender: str, sender_key: str | None) -> str | None:
        if sender == self.user_id and sender_key == self.nio.olm.account.identity_keys["curve25519"]:
            return self.nio.device_id
        devices = self.nio.device_store.active_user_devices(sender) if sender in self.nio.device_store.users else []
        return next((d.id for d in devices if d.curve25519 == sender_key), None)

    def _on_message(self, room, event) -> None:  # noqa: ANN001  (nio's callback signature)
        self._events.append((room.room_id, event))

    def _as_shown(self, room_id: str, event: RoomMessageText | MegolmEvent) -> Received:
        """The message as this client shows it, judged with the newest keys of its sender."""
        if isinstance(event, MegolmEvent):
            return Received(room_id, event.event_id, event.sender, None, UNDECRYPTABLE, event.device_id)
        device = self._device_of(event.sender, getattr(event, "sender_key", None))
        signed = device is not None and device in (cross_signed_devices(self._keys, event.sender) or set())
        if self.strict and event.decrypted and not signed:
            return Received(room_id, event.event_id, event.sender, None, UNSIGNED_SENDER_DEVICE, device)
        return Received(room_id, event.event_id, event.sender, event.body, None, device)

    @property
    def received(self) -> list[Received]:
        return [self._as_shown(room_id, event) for room_id, event in self._events]

    async def sync(self, timeout_ms: int = 500) -> None:
        """One sync, then the device lists and cross-signing keys of everyone met so far."""
        if self.nio.should_query_keys:
            await self.nio.keys_query()
        await self.nio.sync(timeout=timeout_ms)
        if self.nio.should_query_keys:
            await self.nio.keys_query()
        await self.nio.send_to_device_messages()
        await self._query({event.sender for _, event in self._events} | {self.user_id} | self._members())

    async def sync_until(self, predicate, timeout_s: float = 60.0, what: str = "condition"):  # noqa: ANN001, ANN201
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            result = predicate()
            if result:
                return result
            await self.sync()
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; received: {self.received}")

    def _members(self) -> set[str]:
        return {user for room in self.nio.rooms.values() for user in room.users}

    async def _apply_trust(self, room_id: str) -> None:
        members = set(self.nio.rooms[room_id].users)
        if self.nio.should_query_keys:
            await self.nio.keys_query()
        query = await self._query(members)
        for user in members:
            signed = cross_signed_devices(query, user) or set()
            for device in self.nio.device_store.active_user_devices(user):
                if self.strict and device.id not in signed:
                    self.nio.blacklist_device(device)
                else:
                    self.nio.unblacklist_device(device)

    async def send_text(self, room_id: str, text: str) -> str:
        await self.nio.joined_members(room_id)
        await self._apply_trust(room_id)
        response = await self.nio.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text}, ignore_unverified_devices=True)
        return response.event_id

    def shown(self, room_id: str, sender: str) -> list[Received]:
        return [r for r in self.received if r.room_id == room_id and r.sender == sender and r.problem is None]

    def refused(self, room_id: str, sender: str) -> list[Received]:
        return [r for r in self.received if r.room_id == room_id and r.sender == sender and r.problem is not None]
