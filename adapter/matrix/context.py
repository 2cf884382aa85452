"""What every handler is given: the client, config, cache store, engine, sender, the room version for new rooms,
the faces the bot wears in rooms, and the rounds being gathered in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from nio import AsyncClient

from adapter.config import Config
from adapter.matrix.outgoing import MatrixSender
from adapter.matrix.rounds import Rounds
from adapter.matrix.speaking import RoomFaces
from adapter.matrix.store import StateStore
from core import KeyedLocks
from core.engine import Engine


@dataclass
class BotContext:
    client: AsyncClient
    config: Config
    store: StateStore
    engine: Engine
    sender: MatrixSender
    room_version: str  # new rooms are made in it (chosen at start from the homeserver's capabilities)
    user_locks: KeyedLocks = field(default_factory=KeyedLocks)

    @cached_property
    def faces(self) -> RoomFaces:
        return RoomFaces(self.client, self.sender)

    @cached_property
    def rounds(self) -> Rounds:
        return Rounds(self.config.matrix.round_window_s)

    @property
    def bot_user_id(self) -> str:
        return self.client.user_id

    @property
    def server_name(self) -> str:
        return self.client.user_id.split(":", 1)[1]
