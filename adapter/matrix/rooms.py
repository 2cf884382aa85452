"""One object per room the bot serves, after the portal of the mautrix bridges.

A `StoryRoom` owns its room id and chat id, its queue (work in the room runs one
piece at a time, in order), the messages its replies live in, and the player's
actions there: answer a line, redo the newest reply, stop the one being written,
run a command, and fix a turn: an edited line runs again (its reply replaced in place),
a deleted line is taken back (the bot removes its replies), `!rewind`, another take
shown in place, a reply continued in place. A `LobbyRoom` (the Lobby, or the room a player first invited the bot
to) runs commands and starts stories. `LiveRooms` keeps the object of each room
with work running or queued and drops it when the room goes idle, so a process
serving rooms for months does not grow with them.

The engine decides what is owed and what a regenerate replaces; a room keeps only
what Matrix needs: which message shows which reply (`reply_messages` in the store).
Every write to Matrix goes through `MatrixSender`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from adapter.matrix.avatars import speaker_profile
from adapter.matrix.context import BotContext
from adapter.matrix.failures import explain, is_retryable, log_failure
from adapter.matrix.fixing_notices import (
    NOT_A_STORY_LINE,
    NOT_YOUR_LINE,
    OLDER_LINE_DELETED,
    OLDER_LINE_EDITED,
    ONLY_THE_NEWEST_GOES_ON,
    ONLY_THE_NEWEST_TAKES,
    REPLY_DELETED,
    TAKE_IT_BACK,
    TAKEN_BACK_LINE_EDITED,
    TAKEN_BACK_REASON,
    rewind_text,
    take_bounds_text,
    taken_back_text,
)
from adapter.matrix.handlers.commands import BringIn, CommandResult, SetRounds, StartStory, story_ready_text
from adapter.matrix.handlers.onboarding import ensure_onboarded
from adapter.matrix.handlers.registry import handle_command
from adapter.matrix.outgoing import Redact, SendFailed, SendMessage, SendState, SetTyping, txn_id_for
from adapter.matrix.render import notice
from adapter.matrix.room_types import STORY_ROOMS, RoomType
from adapter.matrix.rounds import HeldLine
from adapter.matrix.routing import ContinueReply, Redo, Rewind, StoryControl, SwitchTake
from adapter.matrix.spaces import ROOM_STATE, create_story_room, identity_content
from adapter.matrix.speaking import mentions_for
from adapter.matrix.store import (
    RoomMeta,
    character_of_message,
    get_user_meta,
    message_showing_turn,
    record_reply_message,
    reply_message_for,
    set_room_meta,
    turn_of_message,
)
from adapter.matrix.streaming import StreamingReply
from core.engine import Rewound, RoundLine, TurnUpdate
from core.errors import (
    LineTakenBackError,
    NothingToContinueError,
    NothingToRegenerateError,
    NothingToRewindError,
    NotLatestLineError,
    NotYourLineError,
    RpbotError,
    TurnNotFoundError,
)

log = logging.getLogger(__name__)

NOTICE_HEADINGS = {"digest": "Meanwhile…", "narration": "Time passes…", "scene": "The scene closes.",
                   "ooc": "Out of character"}
ROUNDS_ON = ("Rounds are on: each player's lines are gathered until everyone has spoken (or a short while has "
             "passed), then answered together in one reply. `!rounds off` answers each line in turn again.")
ROUNDS_OFF = "Rounds are off: each line is answered in turn."
ONLY_THE_NEWEST_REPLY = "Only the newest reply can be redone: react 🔄 to that one, or send `!regen`."
NOTHING_TO_STOP = "Nothing is being written right now."
def notice_text(kind: str, text: str) -> str:
    heading = NOTICE_HEADINGS.get(kind)
    return f"*{heading}*\n\n{text}" if heading else text


class Room:
    """What every room the bot serves does: tell, and run commands."""

    def __init__(self, ctx: BotContext, meta: RoomMeta) -> None:
        self.ctx = ctx
        self.meta = meta
        self.queue = asyncio.Lock()  # work in this room runs one at a time, in order

    @property
    def room_id(self) -> str:
        return self.meta.room_id

    @property
    def owner(self) -> str:
        return self.meta.matrix_user_id

    async def tell(self, source_event_id: str, purpose: str, text: str) -> None:
        """A notice answering `source_event_id` (its transaction id derives from it and `purpose`)."""
        await self.ctx.sender.send(SendMessage(self.room_id, notice(text), txn_id_for(source_event_id, purpose)))

    async def command(
        self, text: str, source_event_id: str, sender: str, reply_to: str | None = None, mentions: tuple[str, ...] = ()
    ) -> None:
        """Run one `!command` line and perform what it decided; what the homeserver refuses of it
        (an invite, a removal) is told, and the rest of it left undone."""
        try:
            for result in await handle_command(self.ctx, self.meta, text, source_event_id, sender, reply_to, mentions):
                await self.perform(result, source_event_id)
        except SendFailed as refused:
            log_failure(text.split(" ", 1)[0], refused, self._where(source_event_id))
            reason = getattr(refused.response, "message", None) or "no reason given"
            await self.tell(source_event_id, "command-error", f"The homeserver refused that: {reason}.")

    async def perform(self, result: CommandResult, source_event_id: str) -> None:
        if isinstance(result, StartStory):
            await self.start_story(result, source_event_id)
        elif isinstance(result, (Redo, SwitchTake, ContinueReply, Rewind, SetRounds, BringIn)):
            raise TypeError(f"{result!r} only makes sense in a story room")
        else:
            await self.ctx.sender.send(result)

    async def start_story(self, story: StartStory, source_event_id: str) -> None:
        """Make the story room `!new` asked for (in the player's Space, made first if need be)."""
        try:
            async with self.ctx.user_locks.hold(self.owner):
                user = await get_user_meta(self.ctx.store, self.owner)
                space_id = user.space_id if user and user.space_id else await ensure_onboarded(self.ctx, self.owner, self.room_id)
                room_id = await create_story_room(
                    self.ctx, self.owner, space_id, story.host_id, story.guest_id, notify_room=self.room_id,
                    starts_at=story.starts_at, scenario=story.scenario,
                )
        except Exception as exc:  # noqa: BLE001  (every command gets an answer, whatever went wrong)
            log_failure("!new", exc, self._where(source_event_id))
            await self.tell(source_event_id, "command-error", explain(exc, retry="Try `!new` again."))
            return
        await self.tell(source_event_id, "command", story_ready_text(room_id, self.ctx.server_name, story.cast))

    def _where(self, event_id: str | None = None) -> dict[str, str | None]:
        return {"room_id": self.room_id, "chat_id": self.meta.chat_id, "event_id": event_id}


class LobbyRoom(Room):
    """The Lobby, or the room a player first invited the bot to: commands that start stories."""

    async def tell(self, source_event_id: str, purpose: str, text: str) -> None:
        if self.meta.room_type == RoomType.INVITE:
            async with self.ctx.user_locks.hold(self.owner):  # the welcome being made is the first answer here
                pass
        await super().tell(source_event_id, purpose, text)


class StoryRoom(Room):
    """One story: its chat, the messages its replies live in, and the player's actions."""

    @property
    def chat_id(self) -> str:
        assert self.meta.chat_id is not None
        return self.meta.chat_id

    async def perform(self, result: CommandResult, source_event_id: str) -> None:
        if isinstance(result, (Redo, SwitchTake, ContinueReply, Rewind)):
            await self.control(result)
        elif isinstance(result, SetRounds):
            await self.set_rounds(result.on, source_event_id)
        elif isinstance(result, BringIn):
            await self.bring_in(result, source_event_id)
        else:
            await super().perform(result, source_event_id)

    async def bring_in(self, arrival: BringIn, source_event_id: str) -> None:
        """`!invite <character>`: the character comes into the story, its entrance shown under its own
        face (a message 🔄 can redo, like any reply); a refusal (already here, the cast full) is told."""
        await self.ctx.sender.send(SetTyping(self.room_id, True))
        try:
            await self._show(source_event_id, self.ctx.engine.invite_character(self.chat_id, arrival.character_id, player=arrival.player))
        except Exception as exc:  # noqa: BLE001  (every command gets an answer, whatever went wrong)
            log_failure("!invite", exc, self._where(source_event_id))
            await self.tell(source_event_id, "command-error", explain(exc, retry=f"{arrival.name} is here; the entrance was not written."))
        finally:
            await self.ctx.sender.send(SetTyping(self.room_id, False))

    async def set_rounds(self, on: bool, source_event_id: str) -> None:
        """`!rounds on|off`: kept in the room's identity state (so it survives a restart), then the
        cache; a round being gathered when rounds go off is answered at once."""
        await self.ctx.sender.send(SendState(self.room_id, ROOM_STATE, {**identity_content(self.meta), "rounds": on}))
        self.meta = replace(self.meta, rounds=on)
        await set_room_meta(self.ctx.store, self.meta)
        if not on:
            self.ctx.rounds.close(self.room_id)
        await self.tell(source_event_id, "command", ROUNDS_ON if on else ROUNDS_OFF)

    async def control(self, action: StoryControl) -> None:
        """One of the player's controls over the story (a reaction on a reply, or its command)."""
        match action:
            case Redo(_, event_id, reacts_to):
                await self.redo(event_id, reacts_to)
            case SwitchTake(_, event_id, reacts_to, step, number):
                await self.switch_take(event_id, reacts_to, step, number)
                await self._lift(event_id, reacts_to)
            case ContinueReply(_, event_id, reacts_to):
                await self.continue_reply(event_id, reacts_to)
                await self._lift(event_id, reacts_to)
            case Rewind(_, event_id, steps):
                await self.rewind(event_id, steps)

    async def _stream(
        self, source_event_id: str, update: TurnUpdate, *, shown: str | None = None, txn_source: str | None = None,
        answering: tuple[str, ...] = (),
    ) -> StreamingReply:
        """The message `update`'s speaker answers `source_event_id` in: `shown` (a reply being
        redone), else the one already started for this source (a redelivery, or a line edited
        since), else a new one; transaction ids derive from `txn_source` (the edit, the reaction)
        when the message is written anew. `answering`: the players whose lines it answers (it may
        mention them)."""
        character_id = update.speaker_id

        async def remember(event_id: str) -> None:
            await record_reply_message(self.ctx.store, source_event_id, character_id, event_id)

        if shown is None:
            shown = await reply_message_for(self.ctx.store, source_event_id, character_id)
        profile = await speaker_profile(self.ctx, character_id, update.speaker_name)
        return StreamingReply(
            self.ctx.sender, self.room_id, txn_source or source_event_id, update.speaker_name, speaker_id=character_id,
            event_id=shown, on_first_shown=remember, profile=profile, faces=self.ctx.faces,
            streaming=self.ctx.config.matrix.streaming, mentions=mentions_for(self.ctx.client, self.room_id, answering),
        )

    async def _show(
        self, source_event_id: str, updates: AsyncIterator[TurnUpdate], *, shown: str | None = None,
        txn_source: str | None = None, from_a_line: bool = False, answering: tuple[str, ...] = (),
    ) -> None:
        """Stream each reply of `updates` into its message; notices (a digest, a skip's narration,
        a scene closing, an out-of-character answer) as notices; a skip or scene close a line
        asked for (`from_a_line`) says how to take it back. Each finished reply, and each
        narration, is recorded with its engine turn. The first reply answers the players whose
        lines it follows (`TurnUpdate.answering`, else `answering`) and may mention them; a second
        character's answers the first."""
        reply: StreamingReply | None = None
        first = True
        notices = 0
        txn_source = txn_source or source_event_id
        async for update in updates:
            if update.kind != "reply":
                notices += 1
                text = notice_text(update.kind, update.text)
                if from_a_line and update.kind in ("scene", "narration"):
                    text += "\n\n" + TAKE_IT_BACK
                message = SendMessage(self.room_id, notice(text), txn_id_for(txn_source, f"{update.kind}:{notices}"))
                event_id = await self.ctx.sender.send(message)
                if event_id is not None and update.turn_id is not None:
                    await record_reply_message(self.ctx.store, source_event_id, update.speaker_id, event_id, update.turn_id)
                continue
            if reply is None or reply.speaker_id != update.speaker_id:
                if reply is not None:
                    await reply.finish(reply.latest_text)
                if shown is not None and await character_of_message(self.ctx.store, shown) not in (None, update.speaker_id):
                    shown = None  # another character answers now: a message of its own
                mentioned = (update.answering or answering) if first else ()
                reply = await self._stream(source_event_id, update, shown=shown, txn_source=txn_source, answering=mentioned)
                shown, first = None, False
            if not update.done:
                reply.push(update.text)
                continue
            event_id = await reply.finish(update.text, truncated=update.truncated)
            if event_id is not None and update.turn_id is not None:
                await record_reply_message(self.ctx.store, source_event_id, update.speaker_id, event_id, update.turn_id)
            log.info("reply delivered%s", " (truncated)" if update.truncated else "", extra=self._where(source_event_id))

    async def answer(
        self, text: str, source_event_id: str, reply_to: str | None = None, *, txn_source: str | None = None,
        player: str | None = None,
    ) -> None:
        """Answer one in-story line of `player` (None: the owner; `reply_to`: the message it
        replies to; a character's message makes that character the one who answers, unless the
        line names another): the reply streams into the room; any failure becomes a notice.
        Either way the line is answered (the engine is told); a line the model failed stays
        without a reply in the story, and `!regen` answers it.  A line answered again after an
        edit (`txn_source`: the edit) has its reply replaced in the message that showed it."""
        where = self._where(source_event_id)
        log.info("turn started", extra=where)
        log.debug("turn text: %r", text, extra=where)  # message bodies only at DEBUG
        replying_to = await character_of_message(self.ctx.store, reply_to) if reply_to else None
        await self._answer_lines(
            lambda: self.ctx.engine.post_turn(self.chat_id, text, source_event_id, player=player, replying_to=replying_to),
            (source_event_id,), (player or self.owner,), txn_source=txn_source,
        )

    async def answer_round(self, lines: tuple[HeldLine, ...]) -> None:
        """Answer a round: every line of it by one reply that addresses each player (one line alone
        is answered as any line is)."""
        if len(lines) == 1:
            await self.answer(lines[0].text, lines[0].event_id, lines[0].reply_to, player=lines[0].player)
            return
        log.info("round of %d lines started", len(lines), extra=self._where(lines[0].event_id))
        await self._answer_lines(
            lambda: self.ctx.engine.post_round(self.chat_id, [RoundLine(line.player, line.text, line.event_id) for line in lines]),
            tuple(line.event_id for line in lines), tuple(dict.fromkeys(line.player for line in lines)),
        )

    async def _answer_lines(
        self, reply: Callable[[], AsyncIterator[TurnUpdate]], sources: tuple[str, ...], players: tuple[str, ...], *,
        txn_source: str | None = None,
    ) -> None:
        """Show the `reply` to the lines `sources` (of `players`), keyed to the first; then each is answered."""
        source_event_id = sources[0]
        await self.ctx.sender.send(SetTyping(self.room_id, True))
        try:
            await self._show(source_event_id, reply(), txn_source=txn_source, from_a_line=True, answering=players)
        except Exception as exc:  # noqa: BLE001  (every line gets an answer, whatever went wrong)
            log_failure("turn", exc, self._where(source_event_id))
            retry = "The story paused: send `!regen` to try again."
            await self.tell(txn_source or source_event_id, "error",
                            explain(exc, retry=retry) if is_retryable(exc) else explain(exc))
        finally:
            await self.ctx.sender.send(SetTyping(self.room_id, False))
        for source in sources:
            await self.ctx.engine.line_answered(self.chat_id, source)

    async def redo(self, source_event_id: str, reacts_to: str | None = None) -> None:
        """A new swipe of the newest reply, shown in place (edits of its message), or, when the
        newest line never got its reply, that reply. `reacts_to`: the message a 🔄 was put on."""
        try:
            target = await self.ctx.engine.regenerate_target(self.chat_id)
        except NothingToRegenerateError as exc:
            await self.tell(source_event_id, "regen", str(exc))
            return
        if target.replaces_turn_id is None:
            # The newest line has no reply: answer it, in a message of its own keyed to that line.
            answering = target.line_source_id or source_event_id
            await self._regenerate(answering, attempt_event_id=source_event_id)
            return
        shown = await message_showing_turn(self.ctx.store, target.replaces_turn_id)
        if reacts_to is not None and reacts_to != shown:
            await self.tell(source_event_id, "reaction", ONLY_THE_NEWEST_REPLY)
            return
        await self._regenerate(source_event_id, shown=shown)

    async def _regenerate(self, source_event_id: str, *, shown: str | None = None, attempt_event_id: str | None = None) -> None:
        await self.ctx.sender.send(SetTyping(self.room_id, True))
        try:
            await self._show(source_event_id, self.ctx.engine.regenerate(self.chat_id), shown=shown)
        except Exception as exc:  # noqa: BLE001  (every regenerate gets an answer, whatever went wrong)
            log_failure("regenerate", exc, self._where(source_event_id))
            text = explain(exc, retry="The reply was not redone: try `!regen` again.")
            # Its own transaction id: a second failure must not be swallowed as a repeat of the first.
            await self.tell(attempt_event_id or source_event_id, "regen-error", text)
        finally:
            await self.ctx.sender.send(SetTyping(self.room_id, False))

    async def stop(self, source_event_id: str) -> None:
        """Stop the reply being written (the reply itself then ends, marked as stopped)."""
        if not await self.ctx.engine.cancel(self.chat_id):
            await self.tell(source_event_id, "stop", NOTHING_TO_STOP)

    # -- fixing a turn ---------------------------------------------------------------------

    async def edit(self, line_event_id: str, text: str, event_id: str, player: str | None = None) -> None:
        """`player` (None: the owner) edited the story's latest line, theirs: what followed it is taken
        back and the line is answered again, its reply replaced in the message that showed it (an edit of it)."""
        try:
            rewound = await self.ctx.engine.edit_line(self.chat_id, line_event_id, text, player=player)
        except NotYourLineError:
            await self.tell(event_id, "edit", NOT_YOUR_LINE)
            return
        except NotLatestLineError:
            await self.tell(event_id, "edit", OLDER_LINE_EDITED)
            return
        except LineTakenBackError:
            await self.tell(event_id, "edit", TAKEN_BACK_LINE_EDITED)
            return
        except TurnNotFoundError:
            await self.tell(event_id, "edit", NOT_A_STORY_LINE)
            return
        except RpbotError as exc:
            await self.tell(event_id, "edit", explain(exc))
            return
        shown = [m for m in [await message_showing_turn(self.ctx.store, t) for t in rewound.turn_ids] if m]
        await self.answer(text, line_event_id, txn_source=event_id, player=player)
        await self._remove_messages(shown, rewound.turn_ids, event_id)  # those the new answer did not take over

    async def take_back(self, redacted_event_id: str, event_id: str, player: str | None = None) -> None:
        """`player` (None: the owner) deleted a message: the story's latest line, theirs, is taken back
        (with everything after it, whose messages the bot removes); an older line, another player's,
        or a reply, gets a notice of what to do."""
        try:
            rewound = await self.ctx.engine.take_back_line(self.chat_id, redacted_event_id, player=player)
        except NotYourLineError:
            await self.tell(event_id, "delete", NOT_YOUR_LINE)
            return
        except NotLatestLineError:
            await self.tell(event_id, "delete", OLDER_LINE_DELETED)
            return
        except TurnNotFoundError:
            if await character_of_message(self.ctx.store, redacted_event_id) is not None:
                await self.tell(event_id, "delete", REPLY_DELETED)
            return  # a reaction taken off, a command or an aside deleted: not part of the story
        await self._remove(rewound, event_id, lines=False)
        await self.tell(event_id, "delete", taken_back_text(rewound, "Taken back: the story is as it was before that line."))

    async def rewind(self, event_id: str, steps: int) -> None:
        """`!rewind [n]`: the last n steps leave the story, and their messages the room."""
        try:
            rewound = await self.ctx.engine.rewind(self.chat_id, steps)
        except NothingToRewindError as exc:
            await self.tell(event_id, "rewind", str(exc))
            return
        await self._remove(rewound, event_id, lines=True)
        await self.tell(event_id, "rewind", rewind_text(rewound))

    async def _lift(self, reaction_id: str, reacts_to: str | None) -> None:
        """Take the player's ◀ ▶ ⏩ reaction off once acted on, like a button let go, so it can be
        pressed again (a homeserver refuses the same reaction twice)."""
        if reacts_to is not None:
            await self.ctx.sender.send(Redact(self.room_id, reaction_id, txn_id_for(reaction_id, "lift"), "done"))

    async def _remove(self, rewound: Rewound, event_id: str, *, lines: bool) -> None:
        shown = [m for m in [await message_showing_turn(self.ctx.store, t) for t in rewound.turn_ids] if m]
        await self._remove_messages(shown, rewound.turn_ids, event_id)
        for line in rewound.line_sources if lines else ():
            await self.ctx.sender.send(Redact(self.room_id, line, txn_id_for(event_id, f"redact:{line}"), TAKEN_BACK_REASON))

    async def _remove_messages(self, messages: list[str], taken_back: tuple[int, ...], event_id: str) -> None:
        """Redact each of `messages` that still shows a turn taken back, or nothing any more (a new
        answer's message took its place): not one a new answer took over."""
        for message in dict.fromkeys(messages):
            showing = await turn_of_message(self.ctx.store, message)
            if showing is None or showing in taken_back:
                await self.ctx.sender.send(
                    Redact(self.room_id, message, txn_id_for(event_id, f"redact:{message}"), TAKEN_BACK_REASON))

    async def switch_take(self, event_id: str, reacts_to: str | None = None, step: int = 0, number: int | None = None) -> None:
        """Show another take of the newest reply in its message (◀ ▶ on it, or `!take N`)."""
        try:
            takes = await self.ctx.engine.takes(self.chat_id)
        except NothingToRegenerateError as exc:
            await self.tell(event_id, "take", str(exc))
            return
        shown = await message_showing_turn(self.ctx.store, takes.turn_id)
        if reacts_to is not None and reacts_to != shown:
            await self.tell(event_id, "reaction", ONLY_THE_NEWEST_TAKES)
            return
        wanted = number if number is not None else takes.shown + step
        if not 1 <= wanted <= takes.count or wanted == takes.shown:
            await self.tell(event_id, "take", take_bounds_text(wanted, takes))
            return
        update = await self.ctx.engine.show_take(self.chat_id, wanted)
        reply = await self._stream(event_id, update, shown=shown)
        message = await reply.finish(update.text, truncated=update.truncated)
        if message is not None and update.turn_id is not None:
            await record_reply_message(self.ctx.store, event_id, update.speaker_id, message, update.turn_id)

    async def continue_reply(self, event_id: str, reacts_to: str | None = None) -> None:
        """The newest reply goes on, growing in its message (⏩ on it, or `!continue`)."""
        try:
            target = await self.ctx.engine.regenerate_target(self.chat_id)
        except NothingToRegenerateError as exc:
            await self.tell(event_id, "continue", str(exc))
            return
        shown = await message_showing_turn(self.ctx.store, target.replaces_turn_id) if target.replaces_turn_id else None
        if reacts_to is not None and reacts_to != shown:
            await self.tell(event_id, "reaction", ONLY_THE_NEWEST_GOES_ON)
            return
        await self.ctx.sender.send(SetTyping(self.room_id, True))
        try:
            await self._show(event_id, self.ctx.engine.continue_reply(self.chat_id), shown=shown)
        except NothingToContinueError as exc:
            await self.tell(event_id, "continue", str(exc))
        except Exception as exc:  # noqa: BLE001  (every continue gets an answer, whatever went wrong)
            log_failure("continue", exc, self._where(event_id))
            await self.tell(event_id, "continue-error", explain(exc, retry="The reply did not go on: try `!continue` again."))
        finally:
            await self.ctx.sender.send(SetTyping(self.room_id, False))


def room_for(ctx: BotContext, meta: RoomMeta) -> Room:
    return StoryRoom(ctx, meta) if meta.room_type in STORY_ROOMS and meta.chat_id else LobbyRoom(ctx, meta)


@dataclass
class _Live:
    room: Room
    users: int = 0  # work running or queued in the room


class LiveRooms:
    """The room objects with work running or queued, one per room; idle ones are dropped."""

    def __init__(self, ctx: BotContext) -> None:
        self.ctx = ctx
        self._live: dict[str, _Live] = {}

    def __len__(self) -> int:
        return len(self._live)

    @asynccontextmanager
    async def visit(self, meta: RoomMeta) -> AsyncIterator[Room]:
        """The room's object, without waiting for its queue (for `!stop` and ⏹)."""
        live = self._live.get(meta.room_id)
        if live is None:
            live = self._live[meta.room_id] = _Live(room_for(self.ctx, meta))
        live.users += 1
        try:
            yield live.room
        finally:
            live.users -= 1
            if live.users == 0:
                del self._live[meta.room_id]

    @asynccontextmanager
    async def turn(self, meta: RoomMeta) -> AsyncIterator[Room]:
        """The room's object once earlier work in the room is done."""
        async with self.visit(meta) as room, room.queue:
            yield room

