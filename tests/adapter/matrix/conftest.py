"""Fixtures for adapter tests against a real Synapse: start the real bot process, make players."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql as pgsql

from adapter.matrix.store_schema import adapter_schema_name
from tests.support.bot_process import BotProcess, write_config
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer


class RunningBot:
    def __init__(self, process: BotProcess, user_id: str, server: SynapseServer, database_url: str = "") -> None:
        self.process = process
        self.user_id = user_id
        self.server = server
        self.database_url = database_url  # "" : SQLite files in its data_dir

    def lose_cache(self) -> None:
        """Throw the bot's cache away (it must be stopped), as an operator who lost it would."""
        lose_cache(self.process.config_path.parent / "data", self.database_url, self.user_id)

    def player(self, prefix: str = "player") -> MatrixUser:
        return MatrixUser(self.server.url, self.server.register(prefix))

    def rooms_created(self) -> list[dict[str, Any]]:
        return rooms_created_by(self.server, self.user_id)


def rooms_created_by(server: SynapseServer, user_id: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.url}/_synapse/admin/v1/rooms",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {server.admin.access_token}"},
    )
    return [room for room in response.json()["rooms"] if room["creator"] == user_id]


def lose_cache(data_dir: Path, database_url: str, account: str) -> None:
    """Throw a stopped bot's cache away: its SQLite file, or its schema in PostgreSQL."""
    if not database_url:
        for suffix in ("", "-wal", "-shm"):
            (data_dir / f"adapter.sqlite3{suffix}").unlink(missing_ok=True)
        return
    assert not (data_dir / "adapter.sqlite3").exists()  # the cache lives in PostgreSQL, as the schema dropped shows
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(adapter_schema_name(account))))


def bot_starter(server: SynapseServer, tmp_path: Path, started: list[BotProcess], bot_database_url: str = "") -> Callable[..., RunningBot]:
    def start(*, allowed: tuple[str, ...] = ("@player-*:localhost",), llm: dict | None = None, encryption: bool = False,
              database_url: str | None = None) -> RunningBot:
        database_url = bot_database_url if database_url is None else database_url
        account = server.register("rpbot")
        config = write_config(
            tmp_path / "rpbot.toml",
            homeserver=server.url,
            user_id=account.user_id,
            password=account.password,
            allowed_users=list(allowed),
            data_dir=tmp_path / "data",
            llm=llm,
            encryption=encryption,
            database_url=database_url,
        )
        process = BotProcess(config, tmp_path / "rpbot.log").start()
        started.append(process)
        return RunningBot(process, account.user_id, server, database_url)

    return start


@pytest.fixture
def start_bot(synapse: SynapseServer, tmp_path: Path, bot_database_url: str) -> Iterator[Callable[..., RunningBot]]:
    started: list[BotProcess] = []
    yield bot_starter(synapse, tmp_path, started, bot_database_url)
    for process in started:
        assert process.stop() == 0, process.log_text()[-3000:]


@pytest.fixture
def start_bot_default_limits(synapse_default_limits: SynapseServer, tmp_path: Path, bot_database_url: str) -> Iterator[Callable[..., RunningBot]]:
    started: list[BotProcess] = []
    yield bot_starter(synapse_default_limits, tmp_path, started, bot_database_url)
    for process in started:
        assert process.stop() == 0, process.log_text()[-3000:]


def onboard(
    bot: RunningBot, player: MatrixUser, timeout_s: float = 60, *, after_lobby: Callable[[], object] | None = None
) -> tuple[str, str, str]:
    """Invite the bot as a new player would; join the Space and its rooms; return (space, lobby, story).
    `after_lobby` runs between joining the Lobby and the story (the player's client taking in the Lobby)."""
    player.invite_room = player.create_room(invite=[bot.user_id])  # type: ignore[attr-defined]
    space_id = player.wait_for_invite(room_type="m.space", timeout_s=timeout_s)
    player.join(space_id)

    def children() -> dict[str, dict]:
        found = {room["room_id"]: room for room in player.hierarchy(space_id) if room["room_id"] != space_id}
        return found if len(found) >= 2 else {}

    rooms = player.wait_for(children, timeout_s=timeout_s, what="the lobby and the story room in the Space")
    lobby = next(room_id for room_id, room in rooms.items() if room.get("name") == "Lobby")
    story = next(room_id for room_id, room in rooms.items() if room.get("name") != "Lobby")
    player.join(lobby)
    if after_lobby is not None:
        after_lobby()
    player.join(story)
    return space_id, lobby, story
