"""`rpbot reconcile --dry-run`: what the next start would rebuild in the cache, changing nothing.

It does what startup does up to the decision: one full-state sync as the bot
(reusing its saved session, see `adapter.operator_session`), then the pure
`plan_reconciliation` against a private copy of `adapter.sqlite3` (or the PostgreSQL cache read-only), so neither
the store nor any room state is touched. It prints the store rows that would
be written (rooms, users, the players of each story room), the room-state events that would be
sent, and the players whose onboarding would be finished. Safe while the bot runs: the sync
starts from the sync token the bot has already saved (so it acknowledges
nothing the bot has not seen) and its response is never followed up.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
from nio import AsyncClient, AsyncClientConfig

from adapter.config import Config
from adapter.errors import AdapterError
from adapter.matrix.bot import full_state_sync
from adapter.matrix.reconciliation import ReconcilePlan, plan_reconciliation
from adapter.matrix.store import (
    CacheNotReadyError,
    StateStore,
    all_room_meta,
    all_room_players,
    all_user_meta,
    copy_store,
    get_sync_token,
)
from adapter.operator_session import bot_session


class DryRunError(AdapterError, RuntimeError):
    """The dry run could not sync with the homeserver."""

    player_summary = "I could not sync with the homeserver"


async def plan_restart(config: Config) -> tuple[ReconcilePlan, int]:
    """The plan a restart would apply now, and how many joined rooms the sync saw."""
    scratch = Path(tempfile.mkdtemp(prefix="rpbot-dry-run-"))
    try:
        store = await _cache_to_plan_against(config, scratch)
        try:
            async with httpx.AsyncClient(base_url=config.matrix.homeserver, timeout=30) as http:
                async with bot_session(config, http) as session:
                    client = AsyncClient(
                        config.matrix.homeserver,
                        session.user_id,
                        device_id=session.device_id or "",
                        store_path=str(scratch),
                        config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False),
                    )
                    try:
                        client.restore_login(session.user_id, session.device_id or "", session.access_token)
                        client.next_batch = await get_sync_token(store)
                        response = await full_state_sync(client)
                        if response is None:
                            raise DryRunError("the full-state sync failed; see the log")
                        server_name = session.user_id.split(":", 1)[1]
                        plan = plan_reconciliation(
                            response, await all_room_meta(store), await all_user_meta(store), session.user_id, server_name,
                            cached_players=await all_room_players(store), allowed=config.matrix.is_allowed,
                        )
                        return plan, len(response.rooms.join)
                    finally:
                        await client.close()
        finally:
            await store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _cache_to_plan_against(config: Config, scratch: Path) -> StateStore:
    """The cache as it is now, never written: a private copy of `adapter.sqlite3` (brought to the
    latest version there, as a start would), or the bot's PostgreSQL schema read-only; an empty
    private one when the cache is lost (or the bot never started)."""
    location = config.storage.adapter_location()
    if isinstance(location, Path):
        copy_store(location, scratch / "adapter.sqlite3")
    else:
        try:
            return await StateStore.open(location, account=config.matrix.user_id, read_only=True)
        except CacheNotReadyError:
            pass
    return await StateStore.open(scratch / "adapter.sqlite3")


def format_plan(plan: ReconcilePlan, joined_rooms: int) -> str:
    lines = [
        "Dry run: nothing was changed.",
        f"Full-state sync: {joined_rooms} joined rooms, {plan.rooms_seen} with an rpbot identity.",
    ]
    lines.append(f"Room writes ({len(plan.room_writes)}):")
    for room in plan.room_writes:
        extra = "".join(
            f" {label}={value}"
            for label, value in (("space", room.space_id), ("chat", room.chat_id), ("platform", room.platform_chat_id))
            if value and not (label == "space" and value == room.room_id)
        )
        lines.append(f"  {room.room_id}  {room.room_type}  owner={room.matrix_user_id}{extra}")
    lines.append(f"User writes ({len(plan.user_writes)}):")
    for user in plan.user_writes:
        lines.append(f"  {user.user_id}  space={user.space_id}  lobby={user.lobby_room_id}")
    lines.append(f"Player writes ({len(plan.player_writes)}):")
    for room_id, players in plan.player_writes.items():
        lines.append(f"  {room_id}  players={','.join(sorted(players)) or '(the owner alone)'}")
    lines.append(f"State writes ({len(plan.state_writes)}):")
    for state in plan.state_writes:
        key = f" state_key={state.state_key}" if state.state_key else ""
        lines.append(f"  {state.room_id}  {state.event_type}{key}")
    lines.append(f"Unfinished onboardings ({len(plan.users_to_finish)}):")
    for owner in plan.users_to_finish:
        lines.append(f"  {owner}")
    lines.append(f"State writes once the bot is ready ({len(plan.once_ready)}):")
    for state in plan.once_ready:
        key = f" state_key={state.state_key}" if state.state_key else ""
        lines.append(f"  {state.room_id}  {state.event_type}{key}")
    if plan.highest_platform_number:
        lines.append(f"Platform chat id counter: at least {plan.highest_platform_number}.")
    if not (plan.room_writes or plan.user_writes or plan.player_writes or plan.state_writes or plan.users_to_finish or plan.once_ready):
        lines.append("The cache is in step with Matrix: a restart would rebuild nothing.")
    return "\n".join(lines)
