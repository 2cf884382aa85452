"""A player in tests: a Matrix account driven over the plain Client-Server API.

It does what Element does on the player's behalf (create a room, invite,
join, read the Space hierarchy, send a line, wait for the bot's answer) and
keeps its own sync position, so tests read as a person's steps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from adapter.devserver import RegisteredUser

Event = dict[str, Any]


class MatrixUser:
    def __init__(self, homeserver_url: str, account: RegisteredUser) -> None:
        self.account = account
        self.user_id = account.user_id
        self.http = httpx.Client(
            base_url=homeserver_url, headers={"Authorization": f"Bearer {account.access_token}"}, timeout=60
        )
        self.since: str | None = None
        self.timeline: dict[str, list[Event]] = {}
        self.invites: dict[str, list[Event]] = {}
        self.left: set[str] = set()
        self.member_profiles: dict[str, dict[str, dict[str, Any]]] = {}  # room -> user -> member content, as of the newest sync
        self.sender_names: dict[str, str] = {}  # event id -> its sender's room name when it was sent (what a client shows)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        for _ in range(20):  # wait out rate limits, as a client does
            if response.status_code != 429:
                break
            time.sleep(response.json().get("retry_after_ms", 1000) / 1000 + 0.05)
            response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {response.status_code} {response.text}")
        return response.json()

    def keys_query(self, user_id: str) -> dict[str, Any]:
        """The homeserver's /keys/query answer for `user_id`: its devices and cross-signing keys."""
        return self._call("POST", "/_matrix/client/v3/keys/query", json={"device_keys": {user_id: []}})

    def create_room(self, *, invite: list[str] = (), name: str | None = None, is_direct: bool = True) -> str:
        body: dict[str, Any] = {"preset": "private_chat", "invite": list(invite), "is_direct": is_direct}
        if name:
            body["name"] = name
        return self._call("POST", "/_matrix/client/v3/createRoom", json=body)["room_id"]

    def join(self, room_id: str) -> None:
        self._call("POST", f"/_matrix/client/v3/join/{quote(room_id)}", json={})

    def send_text(self, room_id: str, text: str) -> str:
        txn = uuid.uuid4().hex
        return self._call(
            "PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{txn}", json={"msgtype": "m.text", "body": text}
        )["event_id"]

    def upload(self, data: bytes, filename: str, content_type: str) -> str:
        response = self.http.post("/_matrix/media/v3/upload", params={"filename": filename}, content=data, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        return response.json()["content_uri"]

    def send_content(self, room_id: str, content: dict[str, Any], event_type: str = "m.room.message") -> str:
        txn = uuid.uuid4().hex
        return self._call("PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/{txn}", json=content)["event_id"]

    def react(self, room_id: str, event_id: str, key: str) -> str:
        txn = uuid.uuid4().hex
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        return self._call("PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.reaction/{txn}", json=content)["event_id"]

    def edit(self, room_id: str, event_id: str, text: str) -> str:
        """Edit one of our messages, as Element does: the new text in `m.new_content`, a `* ` fallback body."""
        content = {"msgtype": "m.text", "body": f"* {text}", "m.new_content": {"msgtype": "m.text", "body": text},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": event_id}}
        return self.send_content(room_id, content)

    def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Delete (redact) a message, as Element's Remove does."""
        txn = uuid.uuid4().hex
        body = {"reason": reason} if reason else {}
        return self._call("PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/redact/{quote(event_id)}/{txn}", json=body)["event_id"]

    def redactions(self, room_id: str) -> dict[str, str]:
        """event id removed -> who removed it, from the redactions seen (`redacts` in the content from room
        version 11 on, at the top level before it)."""
        found = {}
        for event in self.timeline.get(room_id, []):
            if event.get("type") == "m.room.redaction":
                redacts = event.get("content", {}).get("redacts") or event.get("redacts")
                found[redacts] = event.get("sender", "")
        return found

    def edits_of(self, room_id: str, event_id: str) -> list[Event]:
        return [
            e for e in self.timeline.get(room_id, [])
            if e.get("content", {}).get("m.relates_to", {}).get("rel_type") == "m.replace"
            and e["content"]["m.relates_to"].get("event_id") == event_id
        ]

    def send_state(self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "") -> httpx.Response:
        return self.http.put(f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}", json=content)

    def state(self, room_id: str) -> list[Event]:
        return self._call("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state")  # type: ignore[return-value]

    def state_event(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        return self._call("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/state/{event_type}/{quote(state_key)}")

    def hierarchy(self, space_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/_matrix/client/v1/rooms/{quote(space_id)}/hierarchy")["rooms"]

    def members(self, room_id: str) -> dict[str, str]:
        chunk = self._call("GET", f"/_matrix/client/v3/rooms/{quote(room_id)}/members")["chunk"]
        return {event["state_key"]: event["content"]["membership"] for event in chunk}

    SYNC_FILTER: str | None = None  # a subclass may ask for longer timelines

    def sync_once(self, timeout_ms: int = 1000) -> None:
        params: dict[str, Any] = {"timeout": timeout_ms}
        if self.SYNC_FILTER:
            params["filter"] = self.SYNC_FILTER
        if self.since:
            params["since"] = self.since
        body = self._call("GET", "/_matrix/client/v3/sync", params=params, timeout=timeout_ms / 1000 + 30)
        self.since = body["next_batch"]
        rooms = body.get("rooms", {})
        for room_id, info in rooms.get("join", {}).items():
            events = info.get("timeline", {}).get("events", [])
            self._follow_members(room_id, info.get("state", {}).get("events", []), events)
            self.timeline.setdefault(room_id, []).extend(events)
            self.invites.pop(room_id, None)
        for room_id, info in rooms.get("invite", {}).items():
            self.invites[room_id] = info.get("invite_state", {}).get("events", [])
        for room_id in rooms.get("leave", {}):
            self.left.add(room_id)
            self.invites.pop(room_id, None)

    def _follow_members(self, room_id: str, state: list[Event], timeline: list[Event]) -> None:
        """Keep each room's member profiles as the sync tells them (its state section is the state
        before its timeline), and note each timeline event's sender name at that event."""
        members = self.member_profiles.setdefault(room_id, {})
        for event in state:
            if event.get("type") == "m.room.member":
                members[event["state_key"]] = event.get("content", {})
        for event in timeline:
            sender = event.get("sender", "")
            self.sender_names[event["event_id"]] = members.get(sender, {}).get("displayname") or sender
            if event.get("type") == "m.room.member":
                members[event["state_key"]] = event.get("content", {})

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            self.sync_once(timeout_ms=500)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")

    def wait_for_invite(self, *, room_type: str | None = None, timeout_s: float = 30.0) -> str:
        def find() -> str | None:
            for room_id, state in self.invites.items():
                create = next((e for e in state if e.get("type") == "m.room.create"), None)
                if room_type is None or (create and create.get("content", {}).get("type") == room_type):
                    return room_id
            return None

        return self.wait_for(find, timeout_s, f"an invite (room type {room_type})")

    def messages_from(self, room_id: str, sender: str) -> list[Event]:
        return [e for e in self.timeline.get(room_id, []) if e.get("sender") == sender and e.get("type") == "m.room.message"]

    def final_texts(self, room_id: str, sender: str) -> dict[str, str]:
        """event_id -> newest body of each message `sender` sent and nobody removed (edits applied)."""
        texts: dict[str, str] = {}
        removed = self.redactions(room_id)
        for event in self.messages_from(room_id, sender):
            if event["event_id"] in removed:
                continue
            content = event.get("content", {})
            relates = content.get("m.relates_to", {})
            if relates.get("rel_type") == "m.replace":
                if relates["event_id"] not in removed:
                    texts[relates["event_id"]] = content.get("m.new_content", {}).get("body", "")
            else:
                texts.setdefault(event["event_id"], content.get("body", ""))
        return texts
