"""MatrixBot: login, startup order, and the sync loop.

Startup: login (the session in `data_dir/session.json` is reused, so a restart
is not a new device; with encryption, the device is then cross-signed, see
`cross_signing.py`) -> the room version for new rooms, from the homeserver's
capabilities -> the account's own name and picture, set only when they differ
(`own_profile.py`) -> a full-state sync (`full_state_sync`; `prepare_live_sync` gives its token) ->
reconciliation of the cache from room state -> redelivery of replies owed ->
the live sync loop. The loop backs off on errors (nio's `sync_forever` does
not), does nio's E2EE housekeeping, hands each response to the dispatcher, and
saves the sync token only after the dispatcher has recorded what it covers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginError,
    MatrixRoom,
    SyncError,
    SyncResponse,
    WhoamiError,
)

from adapter.config import Config
from adapter.errors import StartupError
from adapter.matrix.context import BotContext
from adapter.matrix.cross_signing import CrossSigningError, ensure_device_cross_signed
from adapter.matrix.device_trust import refresh_device_trust
from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.handlers.onboarding import resume_onboarding
from adapter.matrix.outgoing import MatrixSender, OutgoingEvent, SendFailed
from adapter.matrix.own_profile import ensure_own_profile
from adapter.matrix.reconciliation import reconcile_from_space_topology, send_once_ready
from adapter.matrix.room_types import RoomType
from adapter.matrix.room_versions import CAPABILITIES_PATH, NoUsableRoomVersion, choose_room_version, stable_versions
from adapter.matrix.store import (
    RoomMeta,
    StateStore,
    drop_lines_an_older_rpbot_owed,
    get_room_meta,
    get_sync_token,
    lines_an_older_rpbot_owed,
    set_room_meta,
    set_sync_token,
)
from core.engine import Engine
from core.errors import RpbotError

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
CATCH_UP_TIMELINE_LIMIT = 40
# Sync retries back off 1, 2, 4, 8, 15, 15... s: at most four requests a minute to a dead
# homeserver, and a player waits at most ~15 s after it is back (60 s made it half a minute).
MAX_SYNC_BACKOFF_S = 15.0


def catch_up_filter() -> dict:
    """The startup sync's filter, unique per call.

    Synapse caches a sync response for about two minutes, keyed by the request
    (user, device, since, filter, full_state, timeout): a restart within that
    time would otherwise get the previous start's snapshot back (seen: a
    token-less restart answered with no rooms). A never-matching `not_types`
    nonce makes each request distinct without changing what is returned.
    """
    nonce = f"org.rpbot.sync-nonce.{uuid.uuid4().hex}"
    return {"room": {"timeline": {"limit": CATCH_UP_TIMELINE_LIMIT}}, "presence": {"not_types": [nonce]}}


class LoginFailed(StartupError):
    """The homeserver refused the bot's credentials."""


async def fetch_capabilities(client: AsyncClient) -> dict[str, Any]:
    """The homeserver's `/capabilities` body (empty for a server that has no such endpoint)."""
    response = await client.send("GET", CAPABILITIES_PATH, headers={"Authorization": f"Bearer {client.access_token}"})
    if response.status == 404:
        return {}
    if response.status != 200:
        raise StartupError(f"the homeserver answered {response.status} to {CAPABILITIES_PATH}: {(await response.text())[:200]}")
    body = await response.json()
    return body if isinstance(body, dict) else {}


async def room_version_for(client: AsyncClient) -> str:
    """The room version new rooms are made in; StartupError when the homeserver offers none usable."""
    capabilities = await fetch_capabilities(client)
    try:
        version = choose_room_version(capabilities)
    except NoUsableRoomVersion as exc:
        raise StartupError(str(exc)) from exc
    default, _ = stable_versions(capabilities)
    log.info("new rooms are made in room version %s (the homeserver's default: %s)", version, default)
    return version


async def full_state_sync(client: AsyncClient) -> SyncResponse | None:
    """One full-state sync (from the saved token if the client has one); None if it failed.

    Reconciliation reads room state from it, and catch-up the events that arrived while
    the bot was down."""
    since = client.next_batch or None
    log.info("full-state sync %s", f"since {since}" if since else "from the start")
    response = await client.sync(timeout=0, full_state=True, since=since, sync_filter=catch_up_filter())
    if isinstance(response, SyncError):
        log.warning("full-state sync failed: %s", response.message)
        return None
    return response


async def hand_over_lines_an_older_rpbot_owed(store: StateStore, engine: Engine) -> int:
    """The one conversion of a cache from before the engine owned answered lines: each line it still
    owed is handed to the engine (which then owes it, and `redeliver_pending` answers it), then the
    cache's copy is dropped; returns how many. A crash in between hands them again: the engine
    knows a line it already has by its source id."""
    lines = await lines_an_older_rpbot_owed(store)
    for source_event_id, chat_id, text in lines:
        try:
            await engine.receive_line(chat_id, text, source_event_id)
        except RpbotError:
            log.warning("an owed line of chat %s could not be handed over", chat_id, exc_info=True)
    await drop_lines_an_older_rpbot_owed(store)
    return len(lines)


async def prepare_live_sync(client: AsyncClient) -> str | None:
    """One full-state sync; its next_batch (None if it failed)."""
    response = await full_state_sync(client)
    return None if response is None else response.next_batch


class MatrixBot:
    def __init__(self, config: Config, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.data_dir = Path(config.storage.data_dir)
        self.store: StateStore | None = None
        self.client: AsyncClient | None = None
        self.keys_http: httpx.AsyncClient | None = None  # the key endpoints nio does not cover
        self._trust_pending: set[str] = set()  # users whose device trust is still to be refreshed
        self.ctx: BotContext | None = None
        self.dispatcher: Dispatcher | None = None
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def session_path(self) -> Path:
        return self.data_dir / "session.json"

    def _make_client(self, device_id: str | None) -> AsyncClient:
        crypto_dir = self.data_dir / "crypto"
        crypto_dir.mkdir(parents=True, exist_ok=True)
        client_config = AsyncClientConfig(
            encryption_enabled=self.config.matrix.encryption,
            store_sync_tokens=False,
            max_limit_exceeded=0,  # rate limits are waited out by MatrixSender, per room
            max_timeouts=2,  # connection errors come back to our loop, which backs off
            request_timeout=SYNC_TIMEOUT_MS / 1000 + 30,
        )
        return AsyncClient(
            self.config.matrix.homeserver,
            self.config.matrix.user_id,
            device_id=device_id,
            store_path=str(crypto_dir),
            config=client_config,
        )

    async def login(self) -> AsyncClient:
        """Reuse the saved session if it still works; else log in once and save it."""
        matrix = self.config.matrix
        saved = self._read_session()
        if saved is not None:
            client = self._make_client(saved["device_id"])
            client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
            if not isinstance(await client.whoami(), WhoamiError):
                return client
            log.warning("saved session no longer works; logging in again")
            await client.close()
        if matrix.access_token:
            client = self._make_client(None)
            client.access_token = matrix.access_token
            who = await client.whoami()
            if isinstance(who, WhoamiError):
                await client.close()
                raise LoginFailed(f"matrix.access_token was refused: {who.message}")
            await client.close()
            client = self._make_client(who.device_id)
            client.restore_login(who.user_id, who.device_id, matrix.access_token)
        else:
            client = self._make_client(None)
            response = await client.login(matrix.password, device_name=matrix.device_name)
            if isinstance(response, LoginError):
                await client.close()
                raise LoginFailed(f"login as {matrix.user_id} failed: {response.message}")
        self._write_session(client)
        return client

    def _read_session(self) -> dict[str, str] | None:
        try:
            saved = json.loads(self.session_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if saved.get("user_id") != self.config.matrix.user_id or saved.get("homeserver") != self.config.matrix.homeserver:
            return None
        return saved

    def _write_session(self, client: AsyncClient) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.session_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "homeserver": self.config.matrix.homeserver,
                    "user_id": client.user_id,
                    "device_id": client.device_id,
                    "access_token": client.access_token,
                }
            )
        )
        os.chmod(tmp, 0o600)
        tmp.replace(self.session_path)

    async def start(self) -> None:
        """Everything before the live loop: login, cross-signing, room version, full-state sync,
        reconciliation, redelivery, catch-up (see the module docstring)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = await StateStore.open(self.config.storage.adapter_location(), account=self.config.matrix.user_id)
        self.client = await self.login()
        room_version = await room_version_for(self.client)  # before anything is made (keys included): a refusal leaves nothing
        await self._cross_sign_device()
        sender = MatrixSender(self.client)
        ctx = BotContext(self.client, self.config, self.store, self.engine, sender, room_version)
        self.ctx = ctx
        self.dispatcher = Dispatcher(ctx, bootstrap=self._bootstrap_unregistered_room)
        try:
            await ensure_own_profile(ctx)  # before the full-state sync, so that it shows the rooms as they now are
        except SendFailed as exc:  # the bot's own face is a nicety: the stories go on without it
            log.warning("could not set the account's own profile: %s", exc)
        saved_token = await get_sync_token(self.store)
        self.client.next_batch = saved_token
        full_sync = None
        while full_sync is None and not self._stopping.is_set():
            full_sync = await full_state_sync(self.client)
            if full_sync is None:
                await asyncio.sleep(2)
        next_batch = full_sync.next_batch if full_sync is not None else None
        await self._e2ee_housekeeping()
        reconciled = await reconcile_from_space_topology(ctx, full_sync)
        await hand_over_lines_an_older_rpbot_owed(self.store, self.engine)
        await self.dispatcher.redeliver_pending()
        await self.dispatcher.retry_undecrypted()
        if full_sync is not None:
            await self.dispatcher.dispatch_sync(full_sync, include_timeline=False)  # invites that came while we were away
            await self.dispatcher.catch_up(full_sync, since_saved_token=saved_token is not None)
        if next_batch is not None:
            await set_sync_token(self.store, next_batch)
        for owner in reconciled.users_to_finish:  # its new rooms need the live sync: not awaited here
            self.dispatcher.spawn(functools.partial(resume_onboarding, ctx, owner))
        if reconciled.once_ready:  # never held behind a rate limit before the bot is ready
            self.dispatcher.spawn(functools.partial(send_once_ready, ctx, reconciled.once_ready))
        self.ready.set()
        log.info("ready as %s (device %s)", self.client.user_id, self.client.device_id)

    async def _bootstrap_unregistered_room(self, room: MatrixRoom, sender: str) -> list[OutgoingEvent] | None:
        """Bind a genuinely new room the bot is in: one it has no record of after reconciliation.
        The dispatcher calls it when routing finds a room it knows nothing of (`BindRoom`).

        Rooms with an rpbot identity are rebuilt by reconciliation and never come here. A room an
        allowed player talks in (their original invite room, say, after the cache was lost) becomes
        their invite room again, where the Lobby commands work. Returns what to send (nothing), or
        None if the room stays unbound.
        """
        assert self.ctx is not None
        ctx = self.ctx
        if sender == ctx.bot_user_id or not ctx.config.matrix.is_allowed(sender):
            return None
        if await get_room_meta(ctx.store, room.room_id) is not None:
            return None
        await set_room_meta(ctx.store, RoomMeta(room.room_id, RoomType.INVITE, sender))
        log.info("bound %s as an invite room of %s", room.room_id, sender)
        return []

    async def _cross_sign_device(self) -> None:
        """Sign this device with the account's cross-signing keys, so that Element talks to it."""
        client = self.client
        assert client is not None
        if not client.olm:
            return
        self.keys_http = httpx.AsyncClient(
            base_url=self.config.matrix.homeserver, headers={"Authorization": f"Bearer {client.access_token}"}, timeout=30
        )
        if not self.config.matrix.cross_signing:
            log.warning("matrix.cross_signing is off: Element users cannot talk to the bot in encrypted rooms")
            return
        if client.should_upload_keys:
            await client.keys_upload()  # a new device's keys must be on the homeserver before they are signed
        try:
            await ensure_device_cross_signed(
                self.keys_http,
                user_id=client.user_id,
                device_id=client.device_id,
                identity_key=client.olm.account.identity_keys["ed25519"],
                crypto_dir=self.data_dir / "crypto",
                data_dir=self.data_dir,
                password=self.config.matrix.password,
            )
        except (CrossSigningError, httpx.HTTPError) as exc:
            log.error("device %s is not cross-signed, so Element users cannot talk to the bot in encrypted rooms: %s", client.device_id, exc)

    async def _e2ee_housekeeping(self) -> None:
        client = self.client
        assert client is not None
        if not client.olm:
            return
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            self._trust_pending |= set(client.users_for_key_query)
            await client.keys_query()
        if self._trust_pending and self.keys_http is not None:
            if await refresh_device_trust(client, self.keys_http, self._trust_pending):
                self._trust_pending.clear()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def sync_loop(self) -> None:
        assert self.client is not None and self.store is not None and self.dispatcher is not None
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                response = await self.client.sync(timeout=SYNC_TIMEOUT_MS, since=self.client.next_batch)
            except Exception as exc:  # noqa: BLE001  (the homeserver away, or one odd answer: retried with backoff, the loop never dies)
                response = SyncError(str(exc))
            if isinstance(response, SyncError):
                log.warning("sync failed (%s); retrying in %.0fs", response.message, backoff)
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, MAX_SYNC_BACKOFF_S)
                continue
            backoff = 1.0
            await self._e2ee_housekeeping()
            await self.dispatcher.dispatch_sync(response)
            if response.to_device_events:  # keys may have come for messages we could not read
                await self.dispatcher.retry_undecrypted()
            await set_sync_token(self.store, response.next_batch)

    async def run(self) -> None:
        """Start, then sync until `stop()`; the long-poll in flight is cancelled at once."""
        try:
            start = asyncio.create_task(self.start())
            stop = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not start.done():
                start.cancel()
            else:
                start.result()
                loop = asyncio.create_task(self.sync_loop())
                await asyncio.wait({loop, stop}, return_when=asyncio.FIRST_COMPLETED)
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
            stop.cancel()
        finally:
            await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def close(self) -> None:
        if self.dispatcher is not None:
            try:
                await asyncio.wait_for(self.dispatcher.idle(), 10)
            except TimeoutError:
                log.warning("in-flight work did not finish before shutdown")
        if self.client is not None:
            await self.client.close()
        if self.keys_http is not None:
            await self.keys_http.aclose()
        if self.store is not None:
            await self.store.close()
