"""The turn pipeline: post a player's line, regenerate a reply, cancel a generation.

post:        one transaction: the open main scene (opened if none), the user turn (idempotent
             by source id), pending meanwhile digests consumed -> each digest yielded first
             (kind "digest") -> routing (`addressee.route`: one classifier request, only with
             a guest or when a local check sees skip / scene-close words) -> either the story
             moves (scene closed, kind "scene", summaries deferred; then a skip / jump
             narrated, kind "narration") or prompt -> streamed reply -> one transaction: the
             reply turn, its memory for those present; after delivery, the relationship
             reading (`relationships.classify_exchange_edges`, only for an exchange that
             touches on feelings) and the lifecycle classifier.
regenerate:  prompt without the replaced reply -> streamed reply -> one transaction:
             rollback of what the replaced reply caused + the new swipe (+ its effects).
             If the model fails, nothing changed: regenerate again to retry.
cancel:      stops the in-flight generation of a chat; the partial text is recorded as the
             (truncated) reply and the stream ends with a done, truncated update.

Memory writes are deterministic (no model call) and are written in the same
transaction as the reply turn, after its text is complete: nothing runs before the
first words but the routing call (and that only when the line is not plain).  Extra after-turn work (`AfterTurnStep`, e.g. a
lifecycle classifier, `plot.detect_lifecycle`, always run; then the added steps) runs
as a task per chat after the reply (`defer`); the chat's next turn or regenerate waits
for it, so its events belong to that reply (see `regenerate`).  Scene summaries still
owed (a model failure, or a swipe that retracted them) are written the same way.  The rolling
summaries of a long scene (`rolling_summaries.SummaryJobs`) run in the background too, but no turn
waits for them.  `exclusive` gives other
story actions (skip, jump, scene close, meanwhile) the same per-chat serialization.

Turns of one chat are serialized by a per-chat lock; different chats run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from core.eventlog import USER, Database
from core.keyed_locks import KeyedLocks
from core.llm.base import LLMClient
from core.services import addressee, plot, scenes, timeskip
from core.services.card_text import fill, nickname, whole_sentences
from core.services.dialogue import (
    Cast,
    exchange_to_regenerate,
    load_cast,
    recent_dialogue,
    reply_source,
    require_character,
    shown_reply_for_source,
)
from core.services.generation import Generation
from core.services.memory_write import exchange_text, record_turn_memory
from core.services.prompt import assemble_prompt
from core.services.regenerate import roll_back_turn
from core.services.relationships import classify_exchange_edges, may_touch_relationship
from core.services.replies import ReplySettings, pending_prefix, stop_sequences, strip_speaker_name
from core.services.rolling_summaries import SummaryJobs, parts_may_be_due, write_due_parts
from core.services.tokens import DEFAULT_CONTEXT_TOKENS
from core.state import digests as digest_state
from core.state import turns as turn_state
from core.state import world
from core.state.turns import Turn

log = logging.getLogger(__name__)

NARRATE = "narrate"
EMPTY_REPLY_ATTEMPTS = 2  # an empty reply is asked for once more
ENTRANCE_SAMPLE_CHARS = 400  # of a guest's own greeting, quoted for its voice
FOLLOW_UP_SUFFIX = "#follow-up"  # the source of the other character's short answer to a reply
FOLLOW_UP_MAX_TOKENS = 150


@dataclass(frozen=True)
class TurnUpdate:
    """One step of a streamed reply: who speaks, the text so far, and whether it is complete."""

    speaker_name: str  # the character's display name
    speaker_id: str
    text: str
    done: bool
    truncated: bool = False
    turn_id: int | None = None  # the recorded turn, on the done update
    kind: str = "reply"  # "reply" | "narration" | "digest" | "scene"; non-reply kinds come as one done update


@dataclass(frozen=True)
class AfterTurn:
    """What an after-turn step gets: the exchange just recorded."""

    db: Database
    llm: LLMClient
    chat_id: str
    user_turn: Turn | None
    reply_turn: Turn
    present: tuple[str, ...]


AfterTurnStep = Callable[[AfterTurn], Awaitable[None]]

SCENE_CLOSES = TurnUpdate(timeskip.NARRATOR_NAME, timeskip.NARRATOR, "The scene closes.", True, kind="scene")


@dataclass
class _InFlight:
    """The chat's running turn: cancel may come before the generation exists."""

    cancel_requested: bool = False
    generation: Generation | None = None

    def cancel(self) -> bool:
        self.cancel_requested = True
        if self.generation is not None:
            self.generation.cancel()
        return True


@dataclass
class TurnPipeline:
    db: Database
    llm: LLMClient
    budget_tokens: int = DEFAULT_CONTEXT_TOKENS
    replies: ReplySettings = field(default_factory=ReplySettings)
    after_turn_steps: list[AfterTurnStep] = field(default_factory=list)
    _locks: KeyedLocks = field(default_factory=KeyedLocks)
    _in_flight: dict[str, _InFlight] = field(default_factory=dict)
    _after_work: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    summary_jobs: SummaryJobs = field(default_factory=SummaryJobs)  # rolling summaries: no turn waits for them

    # -- entry points ----------------------------------------------------------------

    async def post_turn(
        self, chat_id: str, text: str, source_id: str, *, replying_to: str | None = None
    ) -> AsyncGenerator[TurnUpdate, None]:
        async with self._locks.hold(chat_id):
            await self._settle(chat_id)
            cast = await load_cast(self.db, chat_id)
            finished = await shown_reply_for_source(self.db, chat_id, source_id)
            if finished is not None:
                yield _done(cast, finished)
                return
            posted = await turn_state.get_turn_by_source(self.db, chat_id, source_id)
            if posted is not None and await world.scene_closed_by(self.db, chat_id, posted.turn_id):
                yield SCENE_CLOSES  # what this line did, said again; nothing is routed or closed twice
                return
            async with self.db.transaction() as tx:
                await scenes.ensure_scene(tx, cast)
                user_turn, _ = await turn_state.record_turn(tx, chat_id, "user", USER, text, source_id=source_id)
                surfaced = await digest_state.consume_pending_digests(tx, chat_id, user_turn.turn_id)
            for digest in surfaced:
                yield TurnUpdate("Meanwhile", "", digest.text, True, kind="digest")
            control = self._in_flight[chat_id] = _InFlight()
            try:
                route = await self._route(cast, user_turn, replying_to)
                if route.has_intent:
                    async with aclosing(self._move_story(cast, user_turn, route)) as moves:
                        async for update in moves:
                            yield update
                    return
                reply = self._reply(cast, route.speaker, user_turn, None, reply_source(source_id), control)
                last = None
                async with aclosing(reply) as updates:
                    async for update in updates:
                        last = update
                        yield update
                other = self._addressed_other(cast, route.speaker, last, control)
                if other is not None and last is not None:
                    instruction = (f"[{route.speaker.name} has just spoken to {other.name}. Write {other.name}'s "
                                   "short answer: a line or two.]")
                    # It answers the reply, not the player's line: no line of the player's to answer.
                    follow = self._reply(cast, other, None, None, reply_source(source_id) + FOLLOW_UP_SUFFIX,
                                         control, instruction, max_tokens=FOLLOW_UP_MAX_TOKENS)
                    async with aclosing(follow) as updates:
                        async for update in updates:
                            yield update
            finally:
                self._in_flight.pop(chat_id, None)

    async def regenerate(self, chat_id: str) -> AsyncGenerator[TurnUpdate, None]:
        async with self._locks.hold(chat_id):
            await self._settle(chat_id)
            cast = await load_cast(self.db, chat_id)
            exchange = await exchange_to_regenerate(self.db, chat_id)
            user_turn, replaced = exchange.user_turn, exchange.replaced
            control = self._in_flight[chat_id] = _InFlight()
            try:
                if replaced is not None:
                    speaker = cast.get(replaced.speaker) or await require_character(self.db, replaced.speaker)
                    source = None
                else:
                    speaker = await self._addressee(cast, user_turn) if user_turn else cast.host
                    source = reply_source(user_turn.source_id) if user_turn and user_turn.source_id else None
                async with aclosing(self._reply(cast, speaker, user_turn, replaced, source, control)) as updates:
                    async for update in updates:
                        yield update
            finally:
                self._in_flight.pop(chat_id, None)

    async def entrance(self, chat_id: str, source_id: str) -> AsyncGenerator[TurnUpdate, None]:
        """The guest's entrance into the host's story, once (`source_id` keys it): written by the
        model in the story's scene, with the guest's own greeting as a sample of its voice."""
        async with self._locks.hold(chat_id):
            await self._settle(chat_id)
            cast = await load_cast(self.db, chat_id)
            done = await turn_state.get_turn_by_source(self.db, chat_id, source_id)
            if done is not None or len(cast.characters) < 2:
                if done is not None:
                    yield _done(cast, done)
                return
            guest = cast.characters[1]
            own = fill(guest.first_mes, guest, cast)
            instruction = (
                f"[{guest.name} arrives in this scene. Write {guest.name}'s entrance: what {guest.name} says and "
                f"does on coming in, in this story's place and time."
                + (f" How {guest.name} usually opens, for the voice only (the place and situation there are not "
                   f"this story's): \"{whole_sentences(own, ENTRANCE_SAMPLE_CHARS)}\"" if own else "") + "]"
            )
            control = self._in_flight[chat_id] = _InFlight()
            try:
                async with aclosing(self._reply(cast, guest, None, None, source_id, control, instruction)) as updates:
                    async for update in updates:
                        yield update
            finally:
                self._in_flight.pop(chat_id, None)

    @staticmethod
    def _addressed_other(
        cast: Cast, speaker: world.Character, last: TurnUpdate | None, control: _InFlight
    ) -> world.Character | None:
        """The other character present, when the reply just given speaks to it by name."""
        if last is None or not last.done or last.truncated or control.cancel_requested or len(cast.characters) != 2:
            return None
        other = next(c for c in cast.characters if c.character_id != speaker.character_id)
        spoken = re.sub(r"\*[^*]*\*", " ", last.text)  # what it says, not its *actions* (narration)
        called, _ = addressee.named_characters(cast, spoken, strict=True)
        return other if other in called else None

    def chats_held(self) -> int:
        """Chats this pipeline keeps anything for (a lock, a generation, after-work): only those in flight."""
        return len(set(self._locks.keys()) | set(self._in_flight) | set(self._after_work) | self.summary_jobs.chats())

    def cancel(self, chat_id: str) -> bool:
        control = self._in_flight.get(chat_id)
        return control.cancel() if control is not None else False

    async def close(self) -> None:
        for control in list(self._in_flight.values()):
            control.cancel()
        for chat_id in list(self._after_work):
            await self._settle(chat_id)
        await self.summary_jobs.close()

    @asynccontextmanager
    async def exclusive(self, chat_id: str, *, cancellable: bool = False) -> AsyncIterator[_InFlight]:
        """Hold the chat's turn lock (after its pending after-work); with `cancellable`, the
        yielded handle is what `cancel(chat_id)` stops."""
        async with self._locks.hold(chat_id):
            await self._settle(chat_id)
            control = _InFlight()
            if cancellable:
                self._in_flight[chat_id] = control
            try:
                yield control
            finally:
                if cancellable:
                    self._in_flight.pop(chat_id, None)

    def defer(self, chat_id: str, work: Callable[[], Awaitable[object]], what: str = "after-turn work") -> None:
        """Run `work` as the chat's after-work (after any already pending); failures are logged."""
        previous = self._after_work.pop(chat_id, None)

        async def run() -> None:
            if previous is not None:
                await previous
            try:
                await work()
            except Exception:
                log.exception("%s failed for chat %s", what, chat_id)

        task = self._after_work[chat_id] = asyncio.create_task(run())
        task.add_done_callback(lambda done: self._forget_after_work(chat_id, done))

    def _forget_after_work(self, chat_id: str, task: asyncio.Task[None]) -> None:
        if self._after_work.get(chat_id) is task:  # nothing newer queued behind it: keep nothing for this chat
            del self._after_work[chat_id]

    # -- steps -------------------------------------------------------------------------

    async def _route(self, cast: Cast, user_turn: Turn, replying_to: str | None = None) -> addressee.Route:
        """At most one classifier call, and none when the line is plain: it names one character,
        replies to one, or goes on with the last speaker, and asks for no skip or scene close."""
        if len(cast.characters) == 1 and not addressee.may_carry_intent(user_turn.text):
            return addressee.Route(cast.host)
        dialogue = await recent_dialogue(
            self.db, cast.chat.chat_id, limit=addressee.CONTEXT_TURNS, up_to_turn_id=user_turn.turn_id - 1
        )
        if not addressee.may_carry_intent(user_turn.text):
            local = addressee.local_addressee(cast, dialogue, user_turn.text, replying_to)
            if local is not None:
                return addressee.Route(local)
        return await addressee.route(self.llm, cast, dialogue, user_turn.text, context_tokens=self.budget_tokens)

    async def _move_story(self, cast: Cast, user_turn: Turn, route: addressee.Route) -> AsyncGenerator[TurnUpdate, None]:
        """Scene close first (summaries deferred past the reply), then the skip or jump, narrated."""
        chat_id = cast.chat.chat_id
        closed = None
        if route.close_scene:
            closed = await scenes.close_open_scene(self.db, chat_id, cause_turn_id=user_turn.turn_id)
            if closed is not None:
                self.defer(chat_id, partial(scenes.summarize_owed, self.db, self.llm, chat_id,
                                            context_tokens=self.budget_tokens), "scene summary")
                yield SCENE_CLOSES
        target = route.jump or (cast.chat.clock + route.skip if route.skip is not None else None)
        if target is not None:
            source = reply_source(user_turn.source_id) if user_turn.source_id else None
            result, turn = await timeskip.move_clock(
                self.db, self.llm, cast, target, reason=f"asked for in the player's line (turn {user_turn.turn_id})",
                source_id=source, scene_closed=closed is not None, context_tokens=self.budget_tokens,
            )
            yield TurnUpdate(timeskip.NARRATOR_NAME, timeskip.NARRATOR, result.narration, True,
                             turn_id=turn.turn_id, kind="narration")

    async def _addressee(self, cast: Cast, user_turn: Turn) -> world.Character:
        if len(cast.characters) == 1:
            return cast.host
        dialogue = await recent_dialogue(
            self.db, cast.chat.chat_id, limit=addressee.CONTEXT_TURNS, up_to_turn_id=user_turn.turn_id - 1
        )
        local = addressee.local_addressee(cast, dialogue, user_turn.text)
        return local or await addressee.choose_addressee(self.llm, cast, dialogue, user_turn.text,
                                                         context_tokens=self.budget_tokens)

    async def _reply(
        self,
        cast: Cast,
        speaker: world.Character,
        user_turn: Turn | None,
        replaced: Turn | None,
        source_id: str | None,
        control: _InFlight,
        instruction: str = "",
        max_tokens: int | None = None,
    ) -> AsyncGenerator[TurnUpdate, None]:
        take = len(await turn_state.sibling_turns(self.db, replaced.turn_id)) + 1 if replaced else 1
        prompt = await assemble_prompt(
            self.db, cast, speaker, user_turn=user_turn,
            excluding_turn=replaced.turn_id if replaced else None, budget_tokens=self.budget_tokens, take=take,
            instruction=instruction,
        )
        names = [speaker.name, nickname(speaker)]
        stop = stop_sequences(cast, speaker, self.replies)
        record = partial(self._record_reply, cast, speaker, user_turn, replaced, source_id)
        so_far, shown = "", ""
        for attempt in range(EMPTY_REPLY_ATTEMPTS):
            generation = control.generation = Generation(
                self.llm, prompt.messages, purpose=NARRATE, max_tokens=max_tokens or self.replies.max_tokens, stop=stop
            )
            if control.cancel_requested:
                generation.cancel()
            so_far, shown = "", ""
            try:
                async with aclosing(generation.deltas()) as deltas:
                    async for delta in deltas:
                        so_far += delta
                        if pending_prefix(so_far, names):
                            continue
                        shown = strip_speaker_name(so_far, names)
                        yield TurnUpdate(speaker.name, speaker.character_id, shown, done=False)
            except (asyncio.CancelledError, GeneratorExit):
                # The consumer went away mid-stream: keep what was said (if anything), marked truncated.
                await generation.aclose()
                if shown:
                    await asyncio.shield(record(shown, True))
                raise
            finally:
                await generation.aclose()
            shown = strip_speaker_name(so_far, names)
            if generation.stopped or shown.strip():
                break
            log.warning("empty reply from %s (attempt %d of %d)", speaker.name, attempt + 1, EMPTY_REPLY_ATTEMPTS)
        truncated = generation.stopped
        reply = await asyncio.shield(record(shown if truncated else shown.strip(), truncated))
        yield _done(cast, reply)

    async def _record_reply(
        self,
        cast: Cast,
        speaker: world.Character,
        user_turn: Turn | None,
        replaced: Turn | None,
        source_id: str | None,
        text: str,
        truncated: bool,
    ) -> Turn:
        chat_id = cast.chat.chat_id
        async with self.db.transaction() as tx:
            if replaced is not None:
                await roll_back_turn(tx, chat_id, replaced.turn_id)
            reply, _ = await turn_state.record_turn(
                tx, chat_id, "assistant", speaker.character_id, text, source_id=source_id,
                truncated=truncated, supersedes=replaced.turn_id if replaced else None,
            )
            if text.strip():
                await record_turn_memory(
                    tx, chat_id, user_turn=user_turn, reply_turn=reply, speaker_name=speaker.name,
                    present=cast.present_ids, you_present=True, player_name=cast.player.name,
                )
        if await scenes.owed_summaries(self.db, chat_id):  # a summary failed before, or this swipe retracted one
            self.defer(chat_id, partial(scenes.summarize_owed, self.db, self.llm, chat_id, context_tokens=self.budget_tokens),
                       "owed scene summaries")
        if await parts_may_be_due(self.db, reply.scene_id, self.budget_tokens):
            self.summary_jobs.request(chat_id, partial(write_due_parts, self.db, self.llm, chat_id,
                                                       context_tokens=self.budget_tokens))
        exchange = exchange_text(user_turn, reply.text, speaker.name, cast.player.name)
        said = bool(reply.text.strip())
        lifecycle = said and await plot.needs_lifecycle(self.db, chat_id, exchange)
        feelings = said and user_turn is not None and may_touch_relationship(exchange)
        if self.after_turn_steps or lifecycle or feelings:
            after = AfterTurn(self.db, self.llm, chat_id, user_turn, reply, tuple(cast.present_ids))
            self.defer(chat_id, partial(self._run_after_turn, after, speaker.name, cast.player.name,
                                        lifecycle=lifecycle, feelings=feelings))
        return reply

    async def _run_after_turn(
        self, after: AfterTurn, speaker_name: str, player_name: str, *, lifecycle: bool, feelings: bool
    ) -> None:
        exchange = exchange_text(after.user_turn, after.reply_turn.text, speaker_name, player_name)
        if lifecycle:
            try:
                await plot.detect_lifecycle(after.db, after.llm, after.chat_id, exchange, after.reply_turn.turn_id,
                                            context_tokens=self.budget_tokens)
            except Exception:
                log.exception("lifecycle detection failed for turn %s", after.reply_turn.turn_id)
        if feelings:
            try:
                await classify_exchange_edges(
                    after.db, after.llm, after.chat_id, speaker_id=after.reply_turn.speaker, speaker_name=speaker_name,
                    player_name=player_name, exchange=exchange, reply_turn_id=after.reply_turn.turn_id,
                )
            except Exception:
                log.exception("relationship reading failed for turn %s", after.reply_turn.turn_id)
        for step in self.after_turn_steps:
            try:
                await step(after)
            except Exception:
                log.exception("after-turn step %r failed for turn %s", step, after.reply_turn.turn_id)

    async def _settle(self, chat_id: str) -> None:
        """Wait for the after-turn work of the chat's previous reply."""
        task = self._after_work.pop(chat_id, None)
        if task is not None:
            await task


def _done(cast: Cast, turn: Turn) -> TurnUpdate:
    if turn.role == "narration":
        return TurnUpdate(timeskip.NARRATOR_NAME, turn.speaker, turn.text, True, turn.truncated, turn.turn_id,
                          kind="narration")
    return TurnUpdate(cast.name_of(turn.speaker), turn.speaker, turn.text, True, turn.truncated, turn.turn_id)
