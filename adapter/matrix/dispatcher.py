"""The executor: each sync's events are routed (a pure decision) and the actions performed.

`dispatch_sync` runs inside the sync loop, so it only decides and records, and starts
tasks: a player's line is handed to the engine (`Engine.receive_line`, durable) before
the sync token that covers it is saved, and answered in a task. Work in one room runs
one piece at a time, in order, through the room's object (`adapter.matrix.rooms`);
rooms run concurrently. `!stop` and ⏹ are not queued behind the reply they stop.
What to do with each event is `adapter.matrix.routing.route`; how it is done is here.
Who plays in a story room follows its member events, recorded in the sync loop too
(`adapter.matrix.players`), so a friend's first line right after their join is theirs. In a
room that answers in rounds (`!rounds on`) a line waits for the round it belongs to
(`adapter.matrix.rounds`), which is answered as one.
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
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RoomMemberEvent,
    RoomMessagesError,
    SyncResponse,
)

from adapter.matrix.catch_up import MAX_PAGES, Backlog, backlogs, plan_catch_up
from adapter.matrix.context import BotContext
from adapter.matrix.failures import explain
from adapter.matrix.handlers.onboarding import handle_invite
from adapter.matrix.outgoing import Kick, OutgoingEvent, RequestRoomKey, SendFailed, SendMessage, txn_id_for
from adapter.matrix.players import NOT_ALLOWED_TO_PLAY, left_text, record_join, record_leave, stranger_text, turned_away_text, welcome_text
from adapter.matrix.render import notice
from adapter.matrix.room_types import STORY_ROOMS
from adapter.matrix.rooms import LiveRooms, Room, StoryRoom
from adapter.matrix.rounds import HeldLine
from adapter.matrix.routing import (
    Action,
    AwaitKey,
    BindRoom,
    ContinueReply,
    EditLine,
    Ignore,
    PlayerJoined,
    PlayerLeft,
    Redo,
    Rewind,
    RunCommand,
    Stop,
    SwitchTake,
    TakeBack,
    TakeLine,
    Tell,
    TellStranger,
    TurnAway,
    route,
)
from adapter.matrix.store import (
    RoomMeta,
    forget_undecrypted,
    get_room_meta,
    keep_undecrypted,
    room_players,
    story_room_of_chat,
    undecrypted_events,
)
from core.errors import RpbotError

log = logging.getLogger(__name__)

# Binds a genuinely new room (`MatrixBot._bootstrap_unregistered_room`): what to send, or None if
# the room stays unbound.
Bootstrap = Callable[[MatrixRoom, str], Awaitable[list[OutgoingEvent] | None]]


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
    def __init__(self, ctx: BotContext, *, bootstrap: Bootstrap | None = None, seen_capacity: int = 10_000) -> None:
        self.ctx = ctx
        self.bootstrap = bootstrap  # without it (a dispatcher with no bot), new rooms stay unbound
        self.rooms = LiveRooms(ctx)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Invites repeat in every sync until acted on; strangers are told once. Both bounded:
        # a flood of invites or strangers must not grow the process for ever.
        self._invites_seen = RecentlySeen(seen_capacity)
        self._strangers_told = RecentlySeen(seen_capacity)
        self.rounds = ctx.rounds
        self.rounds.on_close = self._answer_round

    # -- running work ----------------------------------------------------------------

    def spawn(self, work: Callable[[], Awaitable[object]], answer_in: tuple[str, str] | None = None) -> asyncio.Task[None]:
        """Run `work` as a task; log what it raises and, with `answer_in` (room id, source
        event id), tell the player in that room."""

        async def runner() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("work in %s failed", answer_in[0] if answer_in else "the background")
                if answer_in is not None:
                    message = SendMessage(answer_in[0], notice(explain(exc)), txn_id_for(answer_in[1], "failure"))
                    await self.ctx.sender.send(message)

        task = asyncio.create_task(runner(), name="rpbot:work")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def in_turn(self, meta: RoomMeta, work: Callable[[Room], Awaitable[object]], source_event_id: str, *, at_once: bool = False) -> None:
        """Run `work` on the room's object after earlier work in the room (`at_once`: without waiting)."""

        async def run() -> None:
            enter = self.rooms.visit(meta) if at_once else self.rooms.turn(meta)
            async with enter as room:
                await work(room)

        self.spawn(run, (meta.room_id, source_event_id))

    def keys_held(self) -> int:
        """Rooms with work running or queued (nothing is kept for idle ones)."""
        return len(self.rooms)

    async def idle(self) -> None:
        """Wait for every started task (tests and clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- routing and performing --------------------------------------------------------

    async def dispatch_sync(self, response: SyncResponse, *, include_timeline: bool = True) -> None:
        self.ctx.faces.seen_in_sync(response)
        for room_id, info in response.rooms.invite.items():
            for event in info.invite_state:
                if isinstance(event, InviteMemberEvent) and event.state_key == self.ctx.bot_user_id and event.membership == "invite":
                    self.dispatch_invite(room_id, event.sender)
        if include_timeline:
            for room_id, info in response.rooms.join.items():
                for event in self.since_bot_joined(info.timeline.events):
                    await self.dispatch_event(room_id, event)

    def since_bot_joined(self, events: list[Any]) -> list[Any]:
        """The events after the bot's own join, if the timeline holds it: what was said in a room
        before the bot came (a player's first line in the room they invite it to, as Element's
        new-chat dialog sends it) is answered by the welcome, not line by line."""
        joined_at = max(
            (index for index, event in enumerate(events)
             if isinstance(event, RoomMemberEvent) and event.state_key == self.ctx.bot_user_id
             and event.membership == "join" and event.prev_membership != "join"),
            default=-1,
        )
        return events[joined_at + 1 :]

    def dispatch_invite(self, room_id: str, inviter: str) -> None:
        if (room_id, inviter) in self._invites_seen:
            return
        self._invites_seen.add((room_id, inviter))
        self.spawn(lambda: handle_invite(self.ctx, room_id, inviter))  # runs under the inviter's lock

    async def dispatch_event(self, room_id: str, event: Any) -> None:
        meta = await get_room_meta(self.ctx.store, room_id)
        action = await self._route(room_id, event, meta)
        if isinstance(action, BindRoom):
            meta = await self.bind_new_room(action)
            if meta is None:
                return
            action = await self._route(room_id, event, meta)
        await self.perform(action, meta)

    async def bind_new_room(self, action: BindRoom) -> RoomMeta | None:
        """A room the bot knows nothing of is bootstrapped by the bot; its record, or None if it stays unbound."""
        if self.bootstrap is None:
            return None
        room = self.ctx.client.rooms.get(action.room_id) or MatrixRoom(action.room_id, self.ctx.bot_user_id)
        outgoing = await self.bootstrap(room, action.sender)
        if outgoing is None:
            return None
        for event in outgoing:
            self.spawn(functools.partial(self.ctx.sender.send, event))
        return await get_room_meta(self.ctx.store, action.room_id)

    async def _route(self, room_id: str, event: Any, meta: RoomMeta | None) -> Action:
        players = await room_players(self.ctx.store, room_id) if meta is not None and meta.room_type in STORY_ROOMS else frozenset()
        return route(room_id, event, meta, self.ctx.bot_user_id, players=players, allowed=self.ctx.config.matrix.is_allowed)

    async def perform(self, action: Action, meta: RoomMeta | None) -> None:
        """Do what `route` decided. Only recording happens here, in the sync loop; the rest runs as tasks."""
        match action:
            case Ignore():
                return
            case AwaitKey(room_id, encrypted):
                await self.wait_for_key(room_id, encrypted)
                return
            case TellStranger(room_id, owner, sender, event_id):
                self._tell_stranger_once(room_id, owner, sender, event_id, story=meta is not None and meta.room_type in STORY_ROOMS)
                return
        assert meta is not None  # every other action is about a room the bot serves
        match action:
            case PlayerJoined() | PlayerLeft() | TurnAway():
                await self.follow_membership(action, meta)
            case Tell(_, event_id, purpose, text):
                self.in_turn(meta, lambda room: room.tell(event_id, purpose, text), event_id)
            case RunCommand(_, text, event_id, sender, reply_to, at_once, mentions):
                self.in_turn(meta, lambda room: room.command(text, event_id, sender, reply_to, mentions), event_id, at_once=at_once)
            case TakeLine(_, chat_id, text, event_id, reply_to, player):
                await self.take_line(meta, chat_id, text, event_id, reply_to, player)
            case Stop(_, event_id):
                self.in_turn(meta, lambda room: _story(room).stop(event_id), event_id, at_once=True)
            case EditLine(_, _, line_event_id, text, event_id, player):
                self.in_turn(meta, lambda room: _story(room).edit(line_event_id, text, event_id, player), event_id)
            case TakeBack(_, redacted, event_id, player):
                self.in_turn(meta, lambda room: _story(room).take_back(redacted, event_id, player), event_id)
            case Redo() | SwitchTake() | ContinueReply() | Rewind():
                control = action
                self.in_turn(meta, lambda room: _story(room).control(control), action.event_id)

    async def take_line(
        self, meta: RoomMeta, chat_id: str, text: str, event_id: str, reply_to: str | None = None, player: str | None = None
    ) -> None:
        """Hand the line to the engine now (durably, before the sync token moves) and answer it in
        turn, or in its round (a room that answers in rounds)."""
        try:
            new = await self.ctx.engine.receive_line(chat_id, text, event_id, player=player)
        except RpbotError as refused:  # a line refused as it stands: answered at once, never owed
            reason = explain(refused)
            self.in_turn(meta, lambda room: room.tell(event_id, "error", reason), event_id)
            return
        if not new:
            return
        if meta.rounds:
            players = await room_players(self.ctx.store, meta.room_id) | {meta.matrix_user_id}
            self.rounds.add(meta, players, HeldLine(player or meta.matrix_user_id, text, event_id, reply_to))
            return
        self.in_turn(meta, lambda room: _story(room).answer(text, event_id, reply_to, player=player), event_id)

    def _answer_round(self, meta: RoomMeta, lines: tuple[HeldLine, ...]) -> None:
        """A round is complete (every player spoke, or its time is up): answer it in the room's turn."""
        self.in_turn(meta, lambda room: _story(room).answer_round(lines), lines[0].event_id)

    async def follow_membership(self, action: PlayerJoined | PlayerLeft | TurnAway, meta: RoomMeta) -> None:
        """Who plays in a story room follows its membership (recorded here, in the sync loop); the room is told."""
        match action:
            case PlayerJoined(_, _, _, _, event_id):
                try:
                    persona = await record_join(self.ctx, action)
                except RpbotError as refused:
                    reason = explain(refused)
                    self.in_turn(meta, lambda room: room.tell(event_id, "player-joined", reason), event_id)
                    return
                self.in_turn(meta, lambda room: room.tell(event_id, "player-joined", welcome_text(persona)), event_id)
            case PlayerLeft(_, _, _, event_id, removed_by):
                name = await record_leave(self.ctx, action)
                if name is not None and removed_by != self.ctx.bot_user_id:  # `!remove` answered for itself
                    text = left_text(name, removed=removed_by is not None)
                    self.in_turn(meta, lambda room: room.tell(event_id, "player-left", text), event_id)
            case TurnAway(room_id, user_id, event_id, joined):
                kick = Kick(room_id, user_id, NOT_ALLOWED_TO_PLAY)
                text = turned_away_text(user_id, joined)

                async def turn_away(room: Room) -> None:
                    try:
                        await self.ctx.sender.send(kick)
                    except SendFailed as exc:  # gone already, or the homeserver refused: the room is told all the same
                        log.warning("could not turn %s away: %s", user_id, exc, extra={"room_id": room_id})
                    await room.tell(event_id, "turned-away", text)

                self.in_turn(meta, turn_away, event_id)

    def _tell_stranger_once(self, room_id: str, owner: str, sender: str, source_event_id: str, *, story: bool) -> None:
        if (room_id, sender) in self._strangers_told:
            return
        self._strangers_told.add((room_id, sender))
        message = SendMessage(room_id, notice(stranger_text(owner, sender, story=story)), txn_id_for(source_event_id, "stranger"))
        self.spawn(lambda: self.ctx.sender.send(message))

    # -- after a restart ----------------------------------------------------------------

    async def catch_up(self, response: SyncResponse, max_pages: int = MAX_PAGES, *, since_saved_token: bool = False) -> int:
        """Handle what players said while the bot was away, as `catch_up.plan_catch_up` decides:
        older history is read where the plan asks for it, then its events are dispatched. Returns
        how many events were dispatched."""
        joined = response.rooms.join
        rooms = {room_id: await get_room_meta(self.ctx.store, room_id) for room_id in joined}
        waiting = backlogs(joined, rooms)
        dispatched = 0
        while waiting:
            plan = plan_catch_up(waiting, self.ctx.bot_user_id, since_saved_token=since_saved_token, max_pages=max_pages)
            for room_id, event in plan.dispatch:
                await self.dispatch_event(room_id, event)
                dispatched += 1
            waiting = [await self._older_page(room) for room in plan.page_back]
        return dispatched

    async def _older_page(self, room: Backlog) -> Backlog:
        assert room.older is not None
        older = await self.ctx.client.room_messages(room.room_id, start=room.older, direction=MessageDirection.back, limit=50)
        if isinstance(older, RoomMessagesError) or not older.chunk:
            return room.whole()
        return room.with_older_page(older.chunk, older.end)

    async def wait_for_key(self, room_id: str, event: MegolmEvent) -> None:
        """Keep an event we cannot decrypt yet (durably, before the sync token moves) and ask for its key."""
        if await keep_undecrypted(self.ctx.store, room_id, event.event_id, json.dumps(event.source), time.time()):
            log.warning("waiting for the key of %s in %s (session %s)", event.event_id, room_id, event.session_id)
            self.spawn(lambda: self.ctx.sender.send(RequestRoomKey(event)))

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
        """Answer the lines still owed from before a restart (the engine returns a reply already
        made without writing it again); returns how many."""
        owed = await self.ctx.engine.owed_lines()
        by_chat: dict[str, list[HeldLine]] = {}
        for line in owed:
            by_chat.setdefault(line.chat_id, []).append(HeldLine(line.player, line.text, line.source_id))
        for chat_id, lines in by_chat.items():
            meta = await story_room_of_chat(self.ctx.store, chat_id)
            if meta is None:
                continue
            if meta.rounds and len(lines) > 1:  # a round cut short by the stop: answered as one
                self._answer_round(meta, tuple(lines))
                continue
            for held in lines:
                work = functools.partial(_answer, text=held.text, source_event_id=held.event_id, player=held.player or None)
                self.in_turn(meta, work, held.event_id)
        return len(owed)


def _story(room: Room) -> StoryRoom:
    assert isinstance(room, StoryRoom), "routing sends story actions only to story rooms"
    return room


async def _answer(room: Room, *, text: str, source_event_id: str, player: str | None = None) -> None:
    await _story(room).answer(text, source_event_id, player=player)
