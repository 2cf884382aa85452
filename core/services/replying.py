"""Writing one character's reply into the story, and deriving what it causes: the one way,
shared by a new reply, a new take, a continued reply and a take shown again.

`ReplyWriter.write_reply` streams the reply as `TurnUpdate`s and records it as its `ReplyPlan`
says: what is taken back first (a replaced take's consequences, by `rollback.undo_turn`),
whether the text is a new turn, a new take of one or the continuation of one, and in which
scene.  The prompt is built on the story as it will stand when the reply is recorded: the
plan's rollback is applied in a scratch transaction that is rolled back before the model is
called, so everything a replaced reply caused is out of view by construction; the same rollback
and the new text are then recorded in one transaction.  `record_memory` writes what the reply
leaves in memory (in that transaction) and `derive` schedules what it causes after it is shown
(owed scene summaries, the lifecycle and relationship readings, added after-turn steps), through
the pipeline's per-chat after-work (`defer`), so the chat's next turn waits for it; the rolling
summaries of a long scene are asked for on their own queue (`SummaryJobs`), which no turn waits for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial

from core.eventlog import Database, Transaction
from core.llm.base import LLMClient
from core.services import plot, scenes, timeskip
from core.services.card_text import nickname
from core.services.dialogue import Cast, answered_players, exchange_lines, join_names
from core.services.generation import Generation
from core.services.memory_write import exchange_text, record_turn_memory
from core.services.prompt import AssembledPrompt, assemble_prompt
from core.services.relationships import classify_exchange_edges, may_touch_relationship
from core.services.replies import (
    ReplySettings,
    cut_at_others,
    held_back,
    join_continuation,
    other_names,
    pending_prefix,
    stop_sequences,
    strip_speaker_name,
)
from core.services.rollback import roll_back_scene_close
from core.services.rolling_summaries import SummaryJobs, parts_may_be_due, write_due_parts
from core.state import memory as memory_state
from core.state import turns as turn_state
from core.state import world
from core.state.turns import Turn

log = logging.getLogger(__name__)

NARRATE = "narrate"
EMPTY_REPLY_ATTEMPTS = 2  # an empty reply is asked for once more


@dataclass(frozen=True)
class TurnUpdate:
    """One step of a streamed reply: who speaks, the text so far, and whether it is complete."""

    speaker_name: str  # the character's display name
    speaker_id: str
    text: str
    done: bool
    truncated: bool = False
    turn_id: int | None = None  # the recorded turn, on the done update
    kind: str = "reply"  # "reply" | "narration" | "digest" | "scene" | "ooc"; non-reply kinds come as one done update
    answering: tuple[str, ...] = ()  # the players whose lines this reply answers (an adapter mentions them)


@dataclass(frozen=True)
class AfterTurn:
    """What an after-turn step gets: the exchange just recorded."""

    db: Database
    llm: LLMClient
    chat_id: str
    user_turn: Turn | None
    reply_turn: Turn
    present: tuple[str, ...]
    lines: tuple[Turn, ...] = ()  # the player lines the reply answers (the last is `user_turn`)


AfterTurnStep = Callable[[AfterTurn], Awaitable[None]]


@dataclass(frozen=True)
class ReplyPlan:
    """How a reply lands in the story.  `prepare` takes back what the reply replaces (applied in
    the scratch transaction the prompt is built in, and again, atomically, with the reply);
    `replaced`: the reply is a new take of that turn; `continues`: the reply goes on from that
    turn's text (the same turn grows); `scene_id`: the scene it is said in (None: the open one);
    `as_of`: the prompt shows the story as it stood before this turn id (what was recorded from
    it on, such as a meanwhile scene played after the replaced reply, is left out); `opening`: what
    a prompt that shows no earlier line opens with (a newcomer's: the scene is under way);
    `open_scene`: the reply opens a scene when none is open (an entrance, like a line, begins one)."""

    prepare: Callable[[Transaction], Awaitable[object]] | None = None
    replaced: Turn | None = None
    continues: Turn | None = None
    scene_id: int | None = None
    as_of: int | None = None
    opening: str = ""
    open_scene: bool = False


@dataclass
class InFlight:
    """The chat's running turn: cancel may come before the generation exists."""

    cancel_requested: bool = False
    generation: Generation | None = None

    def cancel(self) -> bool:
        self.cancel_requested = True
        if self.generation is not None:
            self.generation.cancel()
        return True


Defer = Callable[[str, Callable[[], Awaitable[object]], str], None]


class ReplyWriter:
    """Writes replies for a `TurnPipeline` (its database, model, prompt budget, reply settings,
    after-turn steps, and its `defer` for work after a reply is shown)."""

    def __init__(
        self, db: Database, llm: LLMClient, budget_tokens: int, settings: ReplySettings,
        after_turn_steps: list[AfterTurnStep], defer: Defer, summary_jobs: SummaryJobs,
    ) -> None:
        self.db, self.llm, self.budget_tokens, self.settings = db, llm, budget_tokens, settings
        self.after_turn_steps = after_turn_steps
        self.defer = defer
        self.summary_jobs = summary_jobs

    async def write_reply(
        self,
        cast: Cast,
        speaker: world.Character,
        user_turn: Turn | None,
        source_id: str | None,
        control: InFlight,
        instruction: str = "",
        max_tokens: int | None = None,
        plan: ReplyPlan = ReplyPlan(),
    ) -> AsyncGenerator[TurnUpdate, None]:
        """`speaker`'s reply, streamed and recorded as `plan` says (see `ReplyPlan`); each update
        names the players whose lines it answers."""
        lines = await exchange_lines(self.db, user_turn)
        answering = answered_players(lines)
        if len(answering) > 1 and plan.continues is None:  # a round: one reply to every player in it
            who = join_names([cast.name_of(player) for player in answering])
            instruction = f"[{speaker.name} answers {who} in one reply, speaking to each of them.]" + (
                f"\n{instruction}" if instruction else "")
        prompt = await self._prompt(cast, speaker, user_turn, instruction, plan, lines)
        names = [speaker.name, nickname(speaker)]
        stop = stop_sequences(cast, speaker, self.settings)
        others = other_names(cast, speaker) if self.settings.stop_at_names else []
        record = partial(self._record_reply, cast, speaker, user_turn, source_id, plan)
        base = plan.continues.text if plan.continues is not None else None
        so_far, shown = "", ""
        for attempt in range(EMPTY_REPLY_ATTEMPTS):
            generation = control.generation = Generation(
                self.llm, prompt.messages, purpose=NARRATE, max_tokens=max_tokens or self.settings.max_tokens, stop=stop
            )
            if control.cancel_requested:
                generation.cancel()
            so_far, shown = "", ""
            try:
                async with aclosing(generation.deltas()) as deltas:
                    async for delta in deltas:
                        so_far += delta
                        cut = cut_at_others(so_far, others)  # it began someone else's line: the reply ends there
                        so_far = so_far if cut is None else so_far[:cut]
                        if cut is None and pending_prefix(so_far, names):
                            continue
                        shown = strip_speaker_name(so_far, names)
                        text = held_back(shown, others)
                        if text:
                            text = text if base is None else join_continuation(base, text)
                            yield TurnUpdate(speaker.name, speaker.character_id, text, done=False, answering=answering)
                        if cut is not None:
                            break
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
        if plan.continues is not None and not shown.strip():
            yield done_update(cast, plan.continues, answering)  # nothing more was said: the reply stays as it was
            return
        reply = await asyncio.shield(record(shown if truncated else shown.strip(), truncated))
        yield done_update(cast, reply, answering)

    async def _prompt(
        self, cast: Cast, speaker: world.Character, user_turn: Turn | None, instruction: str, plan: ReplyPlan,
        lines: list[Turn],
    ) -> AssembledPrompt:
        """The reply's prompt, built on the story as it will stand when the reply is recorded:
        what `plan` takes back is taken back in a scratch transaction that is rolled back before
        any model is called, so every consequence of a replaced reply is out of view by construction."""
        take = len(await turn_state.takes(self.db, plan.replaced.turn_id)) + 1 if plan.replaced else 1
        arguments = dict(user_turn=user_turn, excluding_turn=plan.as_of, budget_tokens=self.budget_tokens, take=take,
                         instruction=instruction, recall_text="\n".join(line.text for line in lines) or None,
                         opening=plan.opening)
        if plan.prepare is None:
            return await assemble_prompt(self.db, cast, speaker, **arguments)  # type: ignore[arg-type]
        async with self.db.scratch() as tx:
            await plan.prepare(tx)
            return await assemble_prompt(tx, cast, speaker, **arguments)  # type: ignore[arg-type]

    async def _record_reply(
        self,
        cast: Cast,
        speaker: world.Character,
        user_turn: Turn | None,
        source_id: str | None,
        plan: ReplyPlan,
        text: str,
        truncated: bool,
    ) -> Turn:
        chat_id = cast.chat.chat_id
        async with self.db.transaction() as tx:
            if plan.prepare is not None:
                await plan.prepare(tx)
            if plan.open_scene:
                await scenes.ensure_scene(tx, cast)
            if plan.continues is not None:
                appended = join_continuation(plan.continues.text, text)[len(plan.continues.text):]
                await turn_state.continue_turn(tx, chat_id, plan.continues.turn_id, appended, truncated=truncated)
                reply = await turn_state.require_turn(tx, plan.continues.turn_id)
            else:
                reply, _ = await turn_state.record_turn(
                    tx, chat_id, "assistant", speaker.character_id, text, source_id=source_id,
                    truncated=truncated, supersedes=plan.replaced.turn_id if plan.replaced else None,
                    scene_id=plan.scene_id,
                )
            await self.record_memory(tx, cast, speaker, user_turn, reply)
        await self.derive(cast, speaker, user_turn, reply)
        return reply

    async def record_memory(
        self, tx: Transaction, cast: Cast, speaker: world.Character, user_turn: Turn | None, reply: Turn
    ) -> None:
        """What a reply leaves in memory, in the reply's transaction; a reply said into a scene already
        closed makes that close's summaries owed again (they are written after it, from what is shown)."""
        chat_id = cast.chat.chat_id
        if reply.text.strip():
            await record_turn_memory(tx, chat_id, lines=await exchange_lines(tx, user_turn), reply_turn=reply,
                                     speaker_name=speaker.name, name_of=cast.name_of_turn)
        scene = await world.get_scene(tx, reply.scene_id) if reply.scene_id else None
        if scene is not None and scene.kind == "main" and not scene.is_open and await memory_state.live_summary_ids(
                tx, scene.scene_id):
            await roll_back_scene_close(tx, chat_id, scene.scene_id)

    async def derive(self, cast: Cast, speaker: world.Character, user_turn: Turn | None, reply: Turn) -> None:
        """Schedule what a recorded reply causes, to run after it is shown (the chat's next turn
        waits for it): scene summaries still owed, the lifecycle and relationship readings (each
        only when the exchange calls for it), the added after-turn steps; and the rolling summaries
        of a long scene, on their own queue (no turn waits for them)."""
        chat_id = cast.chat.chat_id
        if await scenes.owed_summaries(self.db, chat_id):  # a summary failed before, or this reply retracted one
            self.defer(chat_id, partial(scenes.summarize_owed, self.db, self.llm, chat_id, context_tokens=self.budget_tokens),
                       "owed scene summaries")
        if await parts_may_be_due(self.db, reply.scene_id, self.budget_tokens):
            self.summary_jobs.request(chat_id, partial(write_due_parts, self.db, self.llm, chat_id,
                                                       context_tokens=self.budget_tokens))
        lines = await exchange_lines(self.db, user_turn)
        exchange = exchange_text(lines, reply.text, speaker.name, cast.name_of_turn)
        said = bool(reply.text.strip())
        lifecycle = said and await plot.needs_lifecycle(self.db, chat_id, exchange)
        feelings = said and user_turn is not None and may_touch_relationship(exchange)
        if self.after_turn_steps or lifecycle or feelings:
            after = AfterTurn(self.db, self.llm, chat_id, user_turn, reply, tuple(cast.present_ids), tuple(lines))
            self.defer(chat_id, partial(self._run_after_turn, after, cast, speaker.name,
                                        lifecycle=lifecycle, feelings=feelings), "after-turn work")

    async def _run_after_turn(
        self, after: AfterTurn, cast: Cast, speaker_name: str, *, lifecycle: bool, feelings: bool
    ) -> None:
        exchange = exchange_text(after.lines, after.reply_turn.text, speaker_name, cast.name_of_turn)
        if lifecycle:
            try:
                await plot.detect_lifecycle(after.db, after.llm, after.chat_id, exchange, after.reply_turn.turn_id,
                                            context_tokens=self.budget_tokens)
            except Exception:
                log.exception("lifecycle detection failed for turn %s", after.reply_turn.turn_id)
        for player in answered_players(list(after.lines)) if feelings else ():
            try:
                await classify_exchange_edges(
                    after.db, after.llm, after.chat_id, speaker_id=after.reply_turn.speaker, speaker_name=speaker_name,
                    player_id=player, player_name=cast.name_of(player), exchange=exchange,
                    reply_turn_id=after.reply_turn.turn_id,
                )
            except Exception:
                log.exception("relationship reading failed for turn %s", after.reply_turn.turn_id)
        for step in self.after_turn_steps:
            try:
                await step(after)
            except Exception:
                log.exception("after-turn step %r failed for turn %s", step, after.reply_turn.turn_id)


def done_update(cast: Cast, turn: Turn, answering: tuple[str, ...] = ()) -> TurnUpdate:
    """A recorded turn as the done update that shows it (`answering`: the players it answers)."""
    if turn.role == "narration":
        return TurnUpdate(timeskip.NARRATOR_NAME, turn.speaker, turn.text, True, turn.truncated, turn.turn_id,
                          kind="narration")
    return TurnUpdate(cast.name_of(turn.speaker), turn.speaker, turn.text, True, turn.truncated, turn.turn_id,
                      answering=answering)
