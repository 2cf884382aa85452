"""Stand-ins for the adapter's unit tests: a sender that records instead of sending, and the
handful of context fields the dispatcher and handlers read."""

from __future__ import annotations

from typing import Any

from adapter.config import Config, MatrixConfig, StorageConfig
from adapter.matrix.outgoing import SendMessage
from adapter.matrix.rounds import Rounds
from adapter.matrix.speaking import RoomFaces
from core.keyed_locks import KeyedLocks

BOT = "@rpbot:localhost"


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, event: Any) -> str | None:
        self.sent.append(event)
        return f"$out{len(self.sent)}" if hasattr(event, "content") else None

    async def send_all(self, events: list[Any]) -> list[str | None]:
        return [await self.send(e) for e in events]

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        self.sent.append(("upload", filename))
        return f"mxc://localhost/{filename}"

    async def create_room(self, request: Any, *, notify_room: str | None = None) -> str:
        self.sent.append(("createRoom", request))
        return f"!made{len(self.sent)}"

    def bodies(self, room_id: str) -> list[str]:
        """What was shown in the room, in order (an edit counts as its new text)."""
        return [
            (e.content.get("m.new_content") or e.content)["body"]
            for e in self.sent if isinstance(e, SendMessage) and e.room_id == room_id
        ]


class StandInClient:
    """What the adapter reads of nio's client: its user id and the rooms the sync showed (none here)."""

    def __init__(self) -> None:
        self.user_id = BOT
        self.rooms: dict[str, Any] = {}


class Ctx:
    def __init__(self, store: Any, engine: Any) -> None:
        self.store, self.engine, self.sender = store, engine, RecordingSender()
        self.client = StandInClient()
        self.faces = RoomFaces(self.client, self.sender)
        self.rounds = Rounds(60.0)
        self.bot_user_id = BOT
        self.server_name = "localhost"
        self.room_version = "12"
        self.user_locks = KeyedLocks()
        self.config = stand_in_config()


def stand_in_config() -> Config:
    """A config whose data directory holds nothing (no imported faces)."""
    return Config(matrix=MatrixConfig(homeserver="http://127.0.0.1:1", user_id=BOT, password="x"), storage=StorageConfig(data_dir="/nonexistent"))
