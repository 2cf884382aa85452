"""Routes Matrix events from each sync response to handlers, never waiting on them.

`dispatch_sync` runs inside the sync loop: it only decides and records (a
player line is written to the deliveries table before the sync token that
covers it is saved) and starts tasks. Work for one room runs one task at a
time, in order; rooms run concurrently. The bot's own events, rooms it has not
bound, and senders who do not own the room are ignored.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from nio import (
    InviteMemberEvent,
    MegolmEvent,
    MessageDirection,
    ReactionEvent,
    RoomEncryptedMedia,
    RoomMessageMedia,
    RoomMessagesError,
    RoomMessageText,
    SyncResponse,
)

from adapter.matrix.context import BotContext
from adapter.matrix.failures import explain
from adapter.matrix.handlers import persona, story_commands  # noqa: F401  (registers their commands)
from adapter.matrix.handlers.auth import handle_invite
from adapter.matrix.handlers.commands import LOBBY_ROOMS, handle_command
from adapter.matrix.handlers.messages import run_regenerate, run_turn
from adapter.matrix.outgoing import SendMessage, txn_id_for
from adapter.matrix.render import notice
from adapter.matrix.store import (
    RoomMeta,
    forget_undecrypted,
    get_room_meta,
    keep_undecrypted,
    latest_reply_event,
    pending_deliveries,
    record_pending_delivery,
    undecrypted_events,
)
from core import KeyedLocks

log = logging.getLogger(__name__)

NOT_A_STORY_ROOM = "Stories are told in their own rooms; this one is for commands. Type `!help` to see what you can do here."
UPLOAD_IN_LOBBY = "To add this character, reply to the file with `!import`."
UPLOAD_IN_STORY = "Files are not part of the story. To add a character card, upload it in the Lobby and reply to it with `!import`."
REACTIONS_IN_STORY_ROOMS = "React 🔄 or ⏹ to a reply in a story room: there is nothing to redo or stop here."
ONLY_THE_NEWEST_REPLY = "Only the newest reply can be redone: react 🔄 to that one, or send `!regen`."
NOTHING_TO_STOP = "Nothing is being written right now."


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted `> ...` lines a client puts before the typed text of a reply."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    return "\n".join(lines[index:]).lstrip("\n")


def _is_story_line(event: Any) -> bool:
    """A plain in-story line (not a command, not an edit): safe to dispatch twice."""
    if not isinstance(event, RoomMessageText):
        return False
    relates_to = event.source.get("content", {}).get("m.relates_to") or {}
    return relates_to.get("rel_type") != "m.replace" and not event.body.strip().startswith("!")


class RecentlySeen:
    """Remembers the last `capacity` keys (oldest forgotten first): repeat suppression with bounded memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def add(self, key: Hashable) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)


class Dispatcher:
    def __init__(self, ctx: BotContext, *, seen_capacity: int = 10_000) -> None:
        self.ctx = ctx
        self._work_queues = KeyedLocks()  # work under one key (a room, a user) runs in order
        self._tasks: set[asyncio.Task[Any]] = set()
        # Invites repeat in every sync until acted on; strangers are told once. Both bounded:
        # a flood of invites or strangers must not grow the process for ever.
        self._invites_seen = RecentlySeen(seen_capacity)
        self._strangers_told = RecentlySeen(seen_capacity)
        # Set by MatrixBot: binds a genuinely new room (no identity, not in the cache) or returns None.
        self.bootstrap_unregistered_room: Callable[[str, str], Awaitable[list[Any] | None]] | None = None

    def spawn(
        self, key: str, work: Callable[[], Awaitable[object]], answer_in: tuple[str, str] | None = None
    ) -> asyncio.Task[None]:
        """Run `work` after earlier work with the same key; log what it raises and, with
        `answer_in` (room id, source event id), tell the player in that room."""

        async def runner() -> None:
            async with self._work_queues.hold(key):
                try:
                    await work()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("work for %s failed", key)
                    if answer_in is not None:
                        await self._tell(answer_in[0], answer_in[1], "failure", explain(exc))

        task = asyncio.create_task(runner(), name=f"rpbot:{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def keys_held(self) -> int:
        """Rooms and users with work running or queued (nothing is kept for idle ones)."""
        return len(self._work_queues)

    async def idle(self) -> None:
        """Wait for every started task (tests and clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def dispatch_sync(self, response: SyncResponse, *, include_timeline: bool = True) -> None:
        for room_id, info in response.rooms.invite.items():
            for event in info.invite_state:
                if isinstance(event, InviteMemberEvent) and event.state_key == self.ctx.bot_user_id and event.membership == "invite":
                    self.dispatch_invite(room_id, event.sender)
        if include_timeline:
            for room_id, info in response.rooms.join.items():
                for event in info.timeline.events:
                    await self.dispatch_event(room_id, event)

    def dispatch_invite(self, room_id: str, inviter: str) -> None:
        if (room_id, inviter) in self._invites_seen:
            return
        self._invites_seen.add((room_id, inviter))
        self.spawn(f"user:{inviter}", lambda: handle_invite(self.ctx, room_id, inviter))

    async def dispatch_event(self, room_id: str, event: Any) -> None:
        sender = getattr(event, "sender", None)
        if sender == self.ctx.bot_user_id:
            return
        if isinstance(event, MegolmEvent):
            await self.wait_for_key(room_id, event)
            return
        if isinstance(event, ReactionEvent):
            await self.dispatch_reaction(room_id, event)
            return
        if isinstance(event, (RoomMessageMedia, RoomEncryptedMedia)):
            await self.dispatch_upload(room_id, event)
            return
        if not isinstance(event, RoomMessageText):
            return
        sender = event.sender  # every room message has one
        meta = await get_room_meta(self.ctx.store, room_id)
        if meta is None:
            if self.bootstrap_unregistered_room is None or await self.bootstrap_unregistered_room(room_id, sender) is None:
                return
            meta = await get_room_meta(self.ctx.store, room_id)
            if meta is None:
                return
        if sender != meta.matrix_user_id:
            self._tell_stranger_once(meta.room_id, meta.matrix_user_id, sender, event.event_id)
            return
        relates_to = event.source.get("content", {}).get("m.relates_to") or {}
        if relates_to.get("rel_type") == "m.replace":
            return  # an edit of a line already taken: the story keeps what was said
        reply_to = (relates_to.get("m.in_reply_to") or {}).get("event_id")
        text = (strip_reply_fallback(event.body) if reply_to else event.body).strip()
        if not text:
            return
        answer_in = (room_id, event.event_id)
        if text.split(" ", 1)[0].lower() == "!stop":
            # Not queued behind the reply it is meant to stop.
            self.spawn(f"stop:{room_id}", lambda: self._run_command(meta, text, event.event_id, sender), answer_in)
            return
        if text.startswith("!"):
            self.spawn(room_id, lambda: self._run_command(meta, text, event.event_id, sender, reply_to), answer_in)
            return
        if meta.room_type != "chat" or meta.chat_id is None:
            self.spawn(room_id, lambda: self._tell(room_id, event.event_id, "not-a-story", NOT_A_STORY_ROOM))
            return
        if await record_pending_delivery(self.ctx.store, event.event_id, room_id, meta.chat_id, text):
            self.spawn(room_id, lambda: run_turn(self.ctx, meta, text, event.event_id), answer_in)

    async def dispatch_upload(self, room_id: str, event: RoomMessageMedia | RoomEncryptedMedia) -> None:
        """A file or image from the room's owner: cards are imported from the Lobby by a reply."""
        meta = await get_room_meta(self.ctx.store, room_id)
        if meta is None or event.sender != meta.matrix_user_id:
            return
        text = UPLOAD_IN_LOBBY if meta.room_type in LOBBY_ROOMS else UPLOAD_IN_STORY
        self.spawn(room_id, lambda: self._tell(room_id, event.event_id, "upload", text))

    async def dispatch_reaction(self, room_id: str, event: ReactionEvent) -> None:
        """🔄 on the newest reply redoes it; ⏹ stops the reply being written. Either one that
        cannot act is answered with why; other reactions are not actions and pass unanswered."""
        meta = await get_room_meta(self.ctx.store, room_id)
        key = event.key.replace("\ufe0f", "")
        if meta is None or event.sender != meta.matrix_user_id or key not in ("⏹", "🔄"):
            return
        if meta.room_type != "chat" or meta.chat_id is None:
            self.spawn(room_id, lambda: self._tell(room_id, event.event_id, "reaction", REACTIONS_IN_STORY_ROOMS))
            return
        chat_id = meta.chat_id
        if key == "⏹":
            self.spawn(f"stop:{room_id}", lambda: self._stop(room_id, chat_id, event.event_id), (room_id, event.event_id))
        elif event.reacts_to != await latest_reply_event(self.ctx.store, room_id):
            self.spawn(room_id, lambda: self._tell(room_id, event.event_id, "reaction", ONLY_THE_NEWEST_REPLY))
        else:
            self.spawn(room_id, lambda: run_regenerate(self.ctx, meta, event.event_id), (room_id, event.event_id))

    async def _stop(self, room_id: str, chat_id: str, source_event_id: str) -> None:
        if not await self.ctx.engine.cancel(chat_id):
            await self._tell(room_id, source_event_id, "stop", NOTHING_TO_STOP)

    async def _tell(self, room_id: str, source_event_id: str, purpose: str, text: str) -> None:
        await self.ctx.sender.send(SendMessage(room_id, notice(text), txn_id_for(source_event_id, purpose)))

    async def _run_command(self, meta: RoomMeta, text: str, source_event_id: str, sender: str, reply_to: str | None = None) -> None:
        await self.ctx.sender.send_all(await handle_command(self.ctx, meta, text, source_event_id, sender, reply_to))

    def _tell_stranger_once(self, room_id: str, owner: str, sender: str, source_event_id: str) -> None:
        if (room_id, sender) in self._strangers_told:
            return
        self._strangers_told.add((room_id, sender))
        text = f"This story belongs to {owner}; only they can play here. Invite me to your own room to start yours."
        message = SendMessage(room_id, notice(text), txn_id_for(source_event_id, "stranger"))
        self.spawn(room_id, lambda: self.ctx.sender.send(message))

    async def catch_up(self, response: SyncResponse, max_pages: int = 5, *, since_saved_token: bool = False) -> int:
        """Handle what players said while the bot was away: in each bound room, every event after
        the bot's own last one (the bot answers everything, so those are unanswered). Paginates
        back when the sync's timeline was cut short. Returns how many events were dispatched.

        With `since_saved_token` (the cache survived) the timeline holds only events the bot may
        not have recorded, so story lines *before* its last event are dispatched too: a line that
        arrived just before the bot's edit of an earlier reply, then a crash, was otherwise lost
        (seen in the crash loop). The deliveries table drops the ones already taken; commands and
        reactions there are not repeated (they are not idempotent)."""
        dispatched = 0
        for room_id, info in response.rooms.join.items():
            meta = await get_room_meta(self.ctx.store, room_id)
            if meta is None or meta.room_type not in ("chat", "lobby", "invite"):
                continue
            events = list(info.timeline.events)
            start = info.timeline.prev_batch
            pages = 0
            while info.timeline.limited and start and pages < max_pages and not self._has_bot_event(events):
                older = await self.ctx.client.room_messages(room_id, start=start, direction=MessageDirection.back, limit=50)
                if isinstance(older, RoomMessagesError) or not older.chunk:
                    break
                events = list(reversed(older.chunk)) + events
                start = older.end
                pages += 1
            last_bot = max((i for i, e in enumerate(events) if getattr(e, "sender", None) == self.ctx.bot_user_id), default=-1)
            if since_saved_token and meta.room_type == "chat":
                for event in events[: last_bot + 1]:
                    if _is_story_line(event):
                        await self.dispatch_event(room_id, event)
                        dispatched += 1
            for event in events[last_bot + 1 :]:
                await self.dispatch_event(room_id, event)
                dispatched += 1
        return dispatched

    def _has_bot_event(self, events: list[Any]) -> bool:
        return any(getattr(e, "sender", None) == self.ctx.bot_user_id for e in events)

    async def wait_for_key(self, room_id: str, event: MegolmEvent) -> None:
        """Keep an event we cannot decrypt yet (durably, before the sync token moves) and ask for its key."""
        if await keep_undecrypted(self.ctx.store, room_id, event.event_id, json.dumps(event.source), time.time()):
            log.warning("waiting for the key of %s in %s (session %s)", event.event_id, room_id, event.session_id)
            try:
                await self.ctx.client.request_room_key(event)
            except Exception:  # noqa: BLE001  (a key request is best effort; the sender may share it anyway)
                log.debug("room key request for %s failed", event.event_id, exc_info=True)

    async def retry_undecrypted(self) -> int:
        """Dispatch every kept event whose key has arrived since; return how many."""
        done = 0
        for room_id, event_id, event_json in await undecrypted_events(self.ctx.store):
            encrypted = MegolmEvent.from_dict(json.loads(event_json))
            encrypted.room_id = room_id
            try:
                decrypted = self.ctx.client.decrypt_event(encrypted)
            except Exception:  # noqa: BLE001  (nio raises EncryptionError and friends while the key is missing)
                continue
            if isinstance(decrypted, MegolmEvent):
                continue
            await forget_undecrypted(self.ctx.store, event_id)
            await self.dispatch_event(room_id, decrypted)
            done += 1
        return done

    async def redeliver_pending(self) -> int:
        """Start the turns owed from before a restart (the engine returns finished ones without regenerating)."""
        owed = await pending_deliveries(self.ctx.store)
        for delivery in owed:
            meta = await get_room_meta(self.ctx.store, delivery.room_id)
            if meta is None or meta.chat_id is None:
                continue
            self.spawn(delivery.room_id, functools.partial(run_turn, self.ctx, meta, delivery.text, delivery.source_event_id))
        return len(owed)
