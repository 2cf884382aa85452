"""The bot account's session for operator commands (`doctor`, `reconcile --dry-run`).

`bot_session(config)` yields an access token for the bot account without
leaving a new device behind: it reuses `data_dir/session.json` (the running
bot's own session) when that still works, else `matrix.access_token`, else it
logs in with the password as a separate device named "<device_name> (operator
check)" and logs that device out again on exit.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from adapter.config import Config
from adapter.errors import AdapterError


class SessionError(AdapterError, RuntimeError):
    """The bot account could not be logged in; the message says why."""

    player_summary = "The bot's account could not log in"


@dataclass(frozen=True)
class BotSession:
    user_id: str
    device_id: str | None
    access_token: str
    how: str  # "saved session", "access token" or "password login"


def saved_session(config: Config) -> dict[str, str] | None:
    """The session the bot keeps in data_dir/session.json, if it is for this account and homeserver."""
    path = Path(config.storage.data_dir) / "session.json"
    try:
        saved = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, OSError):
        return None
    if saved.get("user_id") != config.matrix.user_id or saved.get("homeserver") != config.matrix.homeserver:
        return None
    return saved


async def whoami(http: httpx.AsyncClient, access_token: str) -> dict | None:
    response = await http.get("/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {access_token}"})
    return response.json() if response.status_code == 200 else None


@asynccontextmanager
async def bot_session(config: Config, http: httpx.AsyncClient) -> AsyncIterator[BotSession]:
    """A working session for the bot account; a password login is logged out afterwards."""
    matrix = config.matrix
    saved = saved_session(config)
    if saved is not None and (who := await whoami(http, saved["access_token"])) is not None:
        yield BotSession(who["user_id"], who.get("device_id"), saved["access_token"], "saved session")
        return
    if matrix.access_token:
        who = await whoami(http, matrix.access_token)
        if who is None:
            raise SessionError("matrix.access_token was refused by the homeserver")
        yield BotSession(who["user_id"], who.get("device_id"), matrix.access_token, "access token")
        return
    response = await http.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": matrix.user_id},
            "password": matrix.password,
            "initial_device_display_name": f"{matrix.device_name} (operator check)",
        },
    )
    if response.status_code != 200:
        try:
            reason = response.json().get("error", response.text)
        except ValueError:
            reason = response.text
        raise SessionError(f"password login as {matrix.user_id} failed: {response.status_code} {reason}")
    body = response.json()
    try:
        yield BotSession(body["user_id"], body.get("device_id"), body["access_token"], "password login")
    finally:
        await http.post("/_matrix/client/v3/logout", headers={"Authorization": f"Bearer {body['access_token']}"})
