"""A genuinely new room (no record after reconciliation) is bootstrapped by the bot, through
`MatrixBot._bootstrap_unregistered_room`, which the started bot hands its dispatcher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nio import RoomMessageText, SyncResponse

import adapter.matrix.bot as bot_module
from adapter.config import Config, MatrixConfig, StorageConfig
from adapter.matrix.reconciliation import ReconcileReport
from adapter.matrix.room_types import RoomType
from adapter.matrix.routing import RunCommand
from adapter.matrix.store import RoomMeta, get_room_meta
from tests.adapter.matrix.stand_ins import BOT

ALICE = "@alice:localhost"
MALLORY = "@mallory:elsewhere"


def text(sender: str, body: str, event_id: str) -> RoomMessageText:
    return RoomMessageText.from_dict({
        "type": "m.room.message", "sender": sender, "event_id": event_id, "origin_server_ts": 1,
        "content": {"msgtype": "m.text", "body": body},
    })


async def started_bot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> bot_module.MatrixBot:
    """A MatrixBot through its real `start`, with the homeserver's side stood in for."""

    class StandInClient:
        user_id, device_id, next_batch, olm, rooms = BOT, "DEV", None, None, {}

        async def close(self) -> None:
            pass

    async def login(self: Any) -> StandInClient:
        return StandInClient()

    async def room_version(client: Any) -> str:
        return "12"

    async def own_profile(ctx: Any) -> bool:
        return False

    async def full_state_sync(client: Any) -> SyncResponse:
        return SyncResponse.from_dict({"next_batch": "s1", "rooms": {"join": {}, "invite": {}, "leave": {}}})

    async def reconcile(ctx: Any, response: Any) -> ReconcileReport:
        return ReconcileReport(0, 0, 0)

    async def nothing_owed(self: Any) -> int:
        return 0

    monkeypatch.setattr(bot_module.MatrixBot, "login", login)
    monkeypatch.setattr(bot_module, "room_version_for", room_version)
    monkeypatch.setattr(bot_module, "ensure_own_profile", own_profile)
    monkeypatch.setattr(bot_module, "full_state_sync", full_state_sync)
    monkeypatch.setattr(bot_module, "reconcile_from_space_topology", reconcile)
    monkeypatch.setattr(bot_module.Dispatcher, "redeliver_pending", nothing_owed)
    config = Config(
        matrix=MatrixConfig(homeserver="http://127.0.0.1:1", user_id=BOT, password="x", allowed_users=[ALICE]),
        storage=StorageConfig(data_dir=tmp_path),
    )
    bot = bot_module.MatrixBot(config, engine=None)  # type: ignore[arg-type]
    await bot.start()
    return bot


async def test_a_room_the_bot_knows_nothing_of_is_bootstrapped_through_the_bot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bootstrapped: list[tuple[str, str]] = []
    real = bot_module.MatrixBot._bootstrap_unregistered_room

    async def watched(self: bot_module.MatrixBot, room: Any, sender: str) -> Any:
        bootstrapped.append((room.room_id, sender))
        return await real(self, room, sender)

    monkeypatch.setattr(bot_module.MatrixBot, "_bootstrap_unregistered_room", watched)
    performed: list[tuple[Any, RoomMeta | None]] = []

    async def perform(self: Any, action: Any, meta: RoomMeta | None) -> None:
        performed.append((action, meta))

    monkeypatch.setattr(bot_module.Dispatcher, "perform", perform)
    bot = await started_bot(monkeypatch, tmp_path)
    assert bot.dispatcher is not None and bot.store is not None
    try:
        await bot.dispatcher.dispatch_event("!new", text(ALICE, "!characters", "$1"))
        await bot.dispatcher.dispatch_event("!strange", text(MALLORY, "!characters", "$2"))

        assert bootstrapped == [("!new", ALICE), ("!strange", MALLORY)]
        bound = RoomMeta("!new", RoomType.INVITE, ALICE)
        assert await get_room_meta(bot.store, "!new") == bound
        assert await get_room_meta(bot.store, "!strange") is None  # not allowed: stays unbound, nothing done
        [(action, meta)] = performed
        assert isinstance(action, RunCommand) and action.text == "!characters" and meta == bound
    finally:
        await bot.store.close()
