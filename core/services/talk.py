"""The turn pipeline: post a player's line, regenerate a reply, cancel a generation.

post:        one transaction: the open main scene (opened if none), the player's turn (idempotent
             by source id, by its author, with the persona name it is spoken under), pending meanwhile digests
             consumed -> each digest yielded first (kind "digest") -> routing
             (`addressee.route`: one classifier request, only with a guest or when a local
             check sees skip / scene-close words) -> prompt -> streamed reply -> one
             transaction: the reply turn, its memory for those present -> then, if the line
             asked for it, the story moves: the scene closes (kind "scene", summaries deferred)
             and a skip / jump is narrated (kind "narration"), after the answer, never instead
             of it; after delivery, the relationship reading (`relationships.classify_exchange_edges`,
             only for an exchange that touches on feelings) and the lifecycle classifier.
             A line wrapped in double parentheses is out of character (`ooc`): answered once,
             briefly (kind "ooc"), and nothing of it is recorded.  A line already recorded
             whose reply is missing (it failed, or an edit took it back) is answered again: in
             place when nothing follows it, else in the present.
regenerate:  prompt built on the story with the replaced reply taken back (`rollback.undo_turn`
             inside a scratch transaction, rolled back before the model is called) -> streamed
             reply -> one transaction: the same rollback + the new take (+ its effects).
             If the model fails, nothing changed: regenerate again to retry.
cancel:      stops the in-flight generation of a chat; the partial text is recorded as the
             (truncated) reply and the stream ends with a done, truncated update.

The pipeline writes every reply through its `ReplyWriter` (`core.services.replying`: the one
way of writing a reply and deriving what it causes), which the story controls
(`core.services.story_control`: takes, continue, edit, rewind) share.

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
from dataclasses import dataclass, field, replace
from functools import partial

from core.errors import LineTakenBackError, NotAPlayerError
from core.eventlog import Database
from core.keyed_locks import KeyedLocks
from core.llm.base import LLMClient
from core.services import addressee, ooc, scenes, timeskip
from core.services.card_text import fill, group_greeting, whole_sentences
from core.services.dialogue import (
    FOLLOW_UP_SUFFIX,
    INVITED_ENTRANCE_PREFIX,
    SKIP_SUFFIX,
    Cast,
    answered_players,
    exchange_lines,
    exchange_to_regenerate,
    join_names,
    load_cast,
    recent_dialogue,
    reply_source,
    require_character,
    round_end,
    shown_reply_for_source,
    shown_take_of_source,
)
from core.services.replies import ReplySettings
from core.services.replying import (
    AfterTurn,
    AfterTurnStep,
    InFlight,
    ReplyPlan,
    ReplyWriter,
    TurnUpdate,
    done_update,
)
from core.services.rollback import undo_turn
from core.services.rolling_summaries import SummaryJobs
from core.services.tokens import DEFAULT_CONTEXT_TOKENS
from core.state import digests as digest_state
from core.state import personas, players, world
from core.state import turns as turn_state
from core.state.digests import Digest
from core.state.turns import Turn

__all__ = ["AfterTurn", "AfterTurnStep", "ReplyPlan", "TurnPipeline", "TurnUpdate", "done_update"]

log = logging.getLogger(__name__)

ENTRANCE_SAMPLE_CHARS = 400  # of a guest's own greeting, quoted for its voice
FOLLOW_UP_MAX_TOKENS = 150


@dataclass(frozen=True)
class Line:
    """A player's line as an adapter hands it over: who said it, what, and the adapter's id of it."""

    player: str
    text: str
    source_id: str


SCENE_CLOSES = TurnUpdate(timeskip.NARRATOR_NAME, timeskip.NARRATOR, "The scene closes.", True, kind="scene")


def entrance_instruction(character: world.Character, cast: Cast) -> str:
    """What a character's entrance is asked as: coming in, in this story's place and time, with its
    own opening (a group greeting of a V3 card, else its greeting) quoted for its voice only."""
    own = fill(group_greeting(character) or character.first_mes, character, cast)
    return (
        f"[{character.name} arrives in this scene. Write {character.name}'s entrance: what {character.name} says and "
        f"does on coming in, in this story's place and time."
        + (f" How {character.name} usually opens, for the voice only (the place and situation there are not "
           f"this story's): \"{whole_sentences(own, ENTRANCE_SAMPLE_CHARS)}\"" if own else "") + "]"
    )


def entrance_opening(character: world.Character, source_id: str) -> str:
    """What the prompt of an invited character's entrance opens with: the scene is under way."""
    if not source_id.startswith(INVITED_ENTRANCE_PREFIX):
        return ""
    return f"[The scene is under way; {character.name} has not heard what was said in it.]"


def follow_up_instruction(answered: world.Character, speaker: world.Character) -> str:
    return (f"[{answered.name} has just spoken to {speaker.name}. Write {speaker.name}'s "
            "short answer: a line or two.]")


@dataclass
class TurnPipeline:
    db: Database
    llm: LLMClient
    budget_tokens: int = DEFAULT_CONTEXT_TOKENS
    replies: ReplySettings = field(default_factory=ReplySettings)
    after_turn_steps: list[AfterTurnStep] = field(default_factory=list)
    _locks: KeyedLocks = field(default_factory=KeyedLocks)
    _in_flight: dict[str, InFlight] = field(default_factory=dict)
    _after_work: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    summary_jobs: SummaryJobs = field(default_factory=SummaryJobs)  # rolling summaries: no turn waits for them

    def __post_init__(self) -> None:
        self.writer = ReplyWriter(self.db, self.llm, self.budget_tokens, self.replies, self.after_turn_steps, self.defer,
                                  self.summary_jobs)

    # -- entry points ----------------------------------------------------------------

    async def post_turn(
        self, chat_id: str, text: str, source_id: str, *, player: str, replying_to: str | None = None
    ) -> AsyncGenerator[TurnUpdate, None]:
        """`player`'s line (the adapter's `source_id`), recorded once and answered (see the module docstring)."""
        async with aclosing(self.post_lines(chat_id, [Line(player, text, source_id)], replying_to=replying_to)) as updates:
            async for update in updates:
                yield update

    async def post_lines(
        self, chat_id: str, lines: list[Line], *, replying_to: str | None = None
    ) -> AsyncGenerator[TurnUpdate, None]:
        """Players' lines (one, or a round), each recorded once, answered by one reply that names
        every player it answers.  Posting a line of a round again returns the round's reply."""
        async with self.hold(chat_id):
            cast = await load_cast(self.db, chat_id)
            posted = [await turn_state.get_turn_by_source(self.db, chat_id, line.source_id) for line in lines]
            for line, turn in zip(lines, posted, strict=True):
                if turn is None:  # a line already in the story is answered even if its player left since
                    await require_playing(self.db, chat_id, line.player)
            if len(lines) == 1 and ooc.is_out_of_character(lines[0].text):
                said = await ooc.answer(self.db, self.llm, cast, lines[0].text, lines[0].player)
                yield TurnUpdate(ooc.SPEAKER_NAME, "", said, True, kind="ooc", answering=(lines[0].player,))
                return
            last = posted[-1]
            if last is not None and last.answered_with is not None:  # a line of a round: the round is answered
                last = await round_end(self.db, last)
                lines, posted = [Line(last.speaker, last.text, last.source_id or lines[-1].source_id)], [last]
            if last is not None and last.is_withdrawn:
                raise LineTakenBackError(lines[-1].source_id)
            finished = await shown_reply_for_source(self.db, chat_id, lines[-1].source_id)
            if finished is not None:
                yield done_update(cast, finished, answered_players(await exchange_lines(self.db, last)))
                if last is not None and finished.role != "narration":  # (older stories: a skip answered a line)
                    async with aclosing(self._moves_made(cast, last)) as moves:
                        async for update in moves:
                            yield update
                return
            if last is not None and await world.scene_closed_by(self.db, chat_id, last.turn_id):
                yield SCENE_CLOSES  # an older story's line that closed the scene instead of an answer
                return
            in_place = last is not None and await self._nothing_follows(chat_id, last)
            user_turn, surfaced = await self._record_lines(cast, lines, in_place)
            for digest in surfaced:
                yield TurnUpdate("Meanwhile", "", digest.text, True, kind="digest")
            source_id = reply_source(lines[-1].source_id)
            control = self._in_flight[chat_id] = InFlight()
            try:
                route = await self._route(cast, user_turn, replying_to)
                plan = ReplyPlan(scene_id=user_turn.scene_id if in_place else None)
                reply = self.writer.write_reply(cast, route.speaker, user_turn, source_id, control, plan=plan)
                done = None
                async with aclosing(reply) as updates:
                    async for update in updates:
                        done = update
                        yield update
                other = self._addressed_other(cast, route.speaker, done, control)
                if other is not None and done is not None:
                    # It answers the reply, not the player's line: no line of the player's to answer.
                    follow = self.writer.write_reply(cast, other, None, source_id + FOLLOW_UP_SUFFIX, control,
                                                     follow_up_instruction(route.speaker, other),
                                                     max_tokens=FOLLOW_UP_MAX_TOKENS)
                    async with aclosing(follow) as updates:
                        async for update in updates:
                            yield update
                if route.has_intent and done is not None and not done.truncated and not control.cancel_requested:
                    async with aclosing(self._move_story(cast, user_turn, route)) as moves:
                        async for update in moves:
                            yield update
            finally:
                self._in_flight.pop(chat_id, None)

    async def _record_lines(self, cast: Cast, lines: list[Line], in_place: bool) -> tuple[Turn, list[Digest]]:
        """Record the lines (each once, by its author under their persona; in a round, each names
        the last), in the open scene unless answered in place; the last line, and the meanwhile
        digests it is told with."""
        chat_id = cast.chat.chat_id
        round_end_source = lines[-1].source_id if len(lines) > 1 else None
        async with self.db.transaction() as tx:
            if not in_place:
                await scenes.ensure_scene(tx, cast)
            created_any = False
            for line in lines:
                author = cast.persona_of(line.player) or await personas.story_persona(tx, chat_id, line.player)
                answered_with = round_end_source if line.source_id != round_end_source else None
                turn, created = await turn_state.record_turn(
                    tx, chat_id, "user", line.player, line.text, source_id=line.source_id, speaker_name=author.name,
                    answered_with=answered_with)
                created_any = created_any or created
                if created and not await personas.has_story_persona(tx, chat_id, line.player):
                    # The story keeps the persona its player began with.
                    await personas.set_story_persona(tx, chat_id, line.player, author.name, author.description)
            surfaced = await digest_state.consume_pending_digests(tx, chat_id, turn.turn_id) if created_any else []
        return turn, surfaced

    async def regenerate(self, chat_id: str) -> AsyncGenerator[TurnUpdate, None]:
        async with self.hold(chat_id):
            cast = await load_cast(self.db, chat_id)
            exchange = await exchange_to_regenerate(self.db, chat_id)
            user_turn, replaced = exchange.user_turn, exchange.replaced
            control = self._in_flight[chat_id] = InFlight()
            try:
                instruction, max_tokens = "", None
                if replaced is not None:
                    speaker = cast.get(replaced.speaker) or await require_character(self.db, replaced.speaker)
                    source, plan = None, self.take_plan(chat_id, replaced)
                    if exchange.answered is not None:  # a follow-up: the other character's short answer, again
                        answered = cast.get(exchange.answered.speaker) or cast.host
                        instruction, max_tokens = follow_up_instruction(answered, speaker), FOLLOW_UP_MAX_TOKENS
                    elif exchange.entrance:  # an entrance, again: knowing what it knew then
                        instruction = entrance_instruction(speaker, cast)
                        plan = replace(plan, opening=entrance_opening(speaker, exchange.entrance))
                else:
                    speaker = await self._addressee(cast, user_turn) if user_turn else cast.host
                    source = reply_source(user_turn.source_id) if user_turn and user_turn.source_id else None
                    in_place = user_turn is not None and await self._nothing_follows(chat_id, user_turn)
                    plan = ReplyPlan(scene_id=user_turn.scene_id if user_turn and in_place else None)
                reply = self.writer.write_reply(cast, speaker, user_turn, source, control, instruction,
                                                max_tokens=max_tokens, plan=plan)
                async with aclosing(reply) as updates:
                    async for update in updates:
                        yield update
            finally:
                self._in_flight.pop(chat_id, None)

    def take_plan(self, chat_id: str, replaced: Turn) -> ReplyPlan:
        """A new take of `replaced`: what it caused is taken back first."""
        return ReplyPlan(prepare=partial(undo_turn, chat_id=chat_id, turn=replaced), replaced=replaced,
                         as_of=replaced.turn_id)

    async def _nothing_follows(self, chat_id: str, line: Turn) -> bool:
        """Whether no shown turn follows the player's line: its reply is then said in place, in its scene."""
        return not await turn_state.shown_story_turns_from(self.db, chat_id, line.turn_id + 1)

    async def entrance(self, chat_id: str, source_id: str) -> AsyncGenerator[TurnUpdate, None]:
        """The guest's entrance into the host's story, once (`source_id` keys it; see `write_entrance`)."""
        async with self.hold(chat_id):
            cast = await load_cast(self.db, chat_id)
            done = await turn_state.get_turn_by_source(self.db, chat_id, source_id)
            if done is not None or len(cast.characters) < 2:
                if done is not None:
                    yield done_update(cast, done)
                return
            async with aclosing(self.write_entrance(cast, cast.characters[1], source_id)) as updates:
                async for update in updates:
                    yield update

    async def write_entrance(
        self, cast: Cast, character: world.Character, source_id: str
    ) -> AsyncGenerator[TurnUpdate, None]:
        """`character`'s entrance into the story, written by the model in the story's scene, with its
        own greeting (a V3 card's first group greeting, if it has one) as a sample of its voice (an
        invited one comes into a scene whose earlier lines it did not hear); the caller holds the
        chat's turn."""
        chat_id = cast.chat.chat_id
        control = self._in_flight[chat_id] = InFlight()
        opening = entrance_opening(character, source_id)
        try:
            reply = self.writer.write_reply(cast, character, None, source_id, control, entrance_instruction(character, cast),
                                            plan=ReplyPlan(opening=opening, open_scene=True))
            async with aclosing(reply) as updates:
                async for update in updates:
                    yield update
        finally:
            self._in_flight.pop(chat_id, None)

    @staticmethod
    def _addressed_other(
        cast: Cast, speaker: world.Character, last: TurnUpdate | None, control: InFlight
    ) -> world.Character | None:
        """The one other character present that the reply just given speaks to by name, if it does."""
        if last is None or not last.done or last.truncated or control.cancel_requested or len(cast.characters) < 2:
            return None
        spoken = re.sub(r"\*[^*]*\*", " ", last.text)  # what it says, not its *actions* (narration)
        called, _ = addressee.named_characters(cast, spoken, strict=True)
        others = [c for c in called if c.character_id != speaker.character_id]
        return others[0] if len(others) == 1 else None

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
    async def hold(self, chat_id: str) -> AsyncIterator[None]:
        """The chat's turn: its lock, once the after-work of its previous reply is done."""
        async with self._locks.hold(chat_id):
            await self._settle(chat_id)
            yield

    def start_generation(self, chat_id: str) -> InFlight:
        """The handle `cancel(chat_id)` stops (drop it with `end_generation`)."""
        control = self._in_flight[chat_id] = InFlight()
        return control

    def end_generation(self, chat_id: str) -> None:
        self._in_flight.pop(chat_id, None)

    @asynccontextmanager
    async def exclusive(self, chat_id: str, *, cancellable: bool = False) -> AsyncIterator[InFlight]:
        """Hold the chat's turn lock (after its pending after-work); with `cancellable`, the
        yielded handle is what `cancel(chat_id)` stops."""
        async with self.hold(chat_id):
            control = InFlight()
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
        """At most one classifier call, and none when the line (every line of a round) is plain: it
        names one character, replies to one, or goes on with the last speaker, and asks for no skip
        or scene close."""
        lines = await exchange_lines(self.db, user_turn)
        said = "\n".join(line.text for line in lines)
        if len(cast.characters) == 1 and not addressee.may_carry_intent(said):
            return addressee.Route(cast.host)
        dialogue = await self._routing_dialogue(cast.chat.chat_id, lines[0])
        if not addressee.may_carry_intent(said):
            local = addressee.local_addressee(cast, dialogue, [line.text for line in lines], replying_to)
            if local is not None:
                return addressee.Route(local)
        text, author = self._routed_text(cast, lines)
        return await addressee.route(self.llm, cast, dialogue, text, author=author, context_tokens=self.budget_tokens)

    async def _routing_dialogue(self, chat_id: str, first_line: Turn) -> list[Turn]:
        """The lines before `first_line` that routing reads, each take of a reply under its first
        take's source id (so a new take of an entrance is still known as one)."""
        dialogue = await recent_dialogue(self.db, chat_id, limit=addressee.CONTEXT_TURNS,
                                         up_to_turn_id=first_line.turn_id - 1)
        first_sources = await turn_state.first_take_sources(self.db, [t.turn_id for t in dialogue if t.source_id is None])
        return [replace(t, source_id=first_sources.get(t.turn_id)) if t.source_id is None else t for t in dialogue]

    @staticmethod
    def _routed_text(cast: Cast, lines: list[Turn]) -> tuple[str, str]:
        """What the classifier reads: the line and its author, or a round's lines, each named, and its players."""
        if len(lines) == 1:
            return lines[0].text, cast.name_of_turn(lines[0])
        names = list(dict.fromkeys(cast.name_of_turn(line) for line in lines))
        return "\n".join(f"{cast.name_of_turn(line)}: {line.text}" for line in lines), join_names(names)

    async def _move_story(self, cast: Cast, user_turn: Turn, route: addressee.Route) -> AsyncGenerator[TurnUpdate, None]:
        """After the answer: the scene close the line asked for (summaries deferred), then the skip
        or jump, narrated."""
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
            source = user_turn.source_id + SKIP_SUFFIX if user_turn.source_id else None
            result, turn = await timeskip.move_clock(
                self.db, self.llm, cast, target, reason=f"asked for in the player's line (turn {user_turn.turn_id})",
                source_id=source, scene_closed=closed is not None, context_tokens=self.budget_tokens,
            )
            yield TurnUpdate(timeskip.NARRATOR_NAME, timeskip.NARRATOR, result.narration, True,
                             turn_id=turn.turn_id, kind="narration")

    async def _moves_made(self, cast: Cast, user_turn: Turn) -> AsyncGenerator[TurnUpdate, None]:
        """What a line already answered moved in the story, said again (nothing moves twice)."""
        chat_id = cast.chat.chat_id
        if await world.scene_closed_by(self.db, chat_id, user_turn.turn_id):
            yield SCENE_CLOSES
        if user_turn.source_id:
            narration = await shown_take_of_source(self.db, chat_id, user_turn.source_id + SKIP_SUFFIX)
            if narration is not None:
                yield done_update(cast, narration)

    async def _addressee(self, cast: Cast, user_turn: Turn) -> world.Character:
        if len(cast.characters) == 1:
            return cast.host
        lines = await exchange_lines(self.db, user_turn)
        dialogue = await self._routing_dialogue(cast.chat.chat_id, lines[0])
        local = addressee.local_addressee(cast, dialogue, [line.text for line in lines])
        text, author = self._routed_text(cast, lines)
        return local or await addressee.choose_addressee(self.llm, cast, dialogue, text, author=author,
                                                         context_tokens=self.budget_tokens)

    async def _settle(self, chat_id: str) -> None:
        """Wait for the after-turn work of the chat's previous reply."""
        task = self._after_work.pop(chat_id, None)
        if task is not None:
            await task




async def require_playing(db: Database, chat_id: str, player: str) -> None:
    """NotAPlayerError unless `player` plays in the story now."""
    if not await players.is_playing(db, chat_id, player):
        raise NotAPlayerError(player, chat_id)
