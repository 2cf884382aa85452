"""The turn pipeline: post a player's line, regenerate a reply, cancel a generation.

post:        record the user turn (idempotent by source id) -> addressee (one classifier
             request, only with a guest) -> prompt -> streamed reply -> one transaction:
             the reply turn, its memory for those present, the edge rule, digests consumed.
regenerate:  prompt without the replaced reply -> streamed reply -> one transaction:
             rollback of what the replaced reply caused + the new swipe (+ its effects).
             If the model fails, nothing changed: regenerate again to retry.
cancel:      stops the in-flight generation of a chat; the partial text is recorded as the
             (truncated) reply and the stream ends with a done, truncated update.

Memory and edge writes are deterministic (no model call) and are written in the same
transaction as the reply turn, after its text is complete: nothing runs before the
first words but the routing call.  Extra after-turn work (`AfterTurnStep`, e.g. a
lifecycle classifier) runs as a task per chat after the reply; the chat's next turn
or regenerate waits for it, so its events belong to that reply (see `regenerate`).

Turns of one chat are serialized by a per-chat lock; different chats run concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import partial

from core.eventlog import USER, Database
from core.llm.base import LLMClient
from core.services import addressee
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
from core.services.memory_write import record_turn_memory
from core.services.prompt import DEFAULT_BUDGET_TOKENS, assemble_prompt
from core.services.regenerate import roll_back_turn
from core.services.relationships import apply_exchange_edges
from core.state import digests as digest_state
from core.state import turns as turn_state
from core.state import world
from core.state.turns import Turn

log = logging.getLogger(__name__)

NARRATE = "narrate"


@dataclass(frozen=True)
class TurnUpdate:
    """One step of a streamed reply: who speaks, the text so far, and whether it is complete."""

    speaker: str  # the character's display name
    speaker_id: str
    text: str
    done: bool
    truncated: bool = False
    turn_id: str | None = None


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
    budget_tokens: int = DEFAULT_BUDGET_TOKENS
    after_turn_steps: list[AfterTurnStep] = field(default_factory=list)
    _locks: defaultdict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))
    _in_flight: dict[str, _InFlight] = field(default_factory=dict)
    _after_work: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    # -- entry points ----------------------------------------------------------------

    async def post_turn(self, chat_id: str, text: str, source_id: str) -> AsyncIterator[TurnUpdate]:
        async with self._locks[chat_id]:
            await self._settle(chat_id)
            cast = await load_cast(self.db, chat_id)
            finished = await shown_reply_for_source(self.db, chat_id, source_id)
            if finished is not None:
                yield _done(cast, finished)
                return
            user_turn, _ = await turn_state.record_turn(self.db, chat_id, "user", USER, text, source_id=source_id)
            control = self._in_flight[chat_id] = _InFlight()
            try:
                speaker = await self._addressee(cast, user_turn)
                reply = self._reply(cast, speaker, user_turn, None, reply_source(source_id), control)
                async with aclosing(reply) as updates:
                    async for update in updates:
                        yield update
            finally:
                self._in_flight.pop(chat_id, None)

    async def regenerate(self, chat_id: str) -> AsyncIterator[TurnUpdate]:
        async with self._locks[chat_id]:
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

    def cancel(self, chat_id: str) -> bool:
        control = self._in_flight.get(chat_id)
        return control.cancel() if control is not None else False

    async def close(self) -> None:
        for control in list(self._in_flight.values()):
            control.cancel()
        for chat_id in list(self._after_work):
            await self._settle(chat_id)

    # -- steps -------------------------------------------------------------------------

    async def _addressee(self, cast: Cast, user_turn: Turn) -> world.Character:
        if len(cast.characters) == 1:
            return cast.host
        dialogue = await recent_dialogue(
            self.db, cast.chat.chat_id, limit=addressee.CONTEXT_TURNS, up_to_turn_id=user_turn.turn_id - 1
        )
        return await addressee.choose_addressee(self.llm, cast, dialogue, user_turn.text)

    async def _reply(
        self,
        cast: Cast,
        speaker: world.Character,
        user_turn: Turn | None,
        replaced: Turn | None,
        source_id: str | None,
        control: _InFlight,
    ) -> AsyncIterator[TurnUpdate]:
        take = len(await turn_state.sibling_turns(self.db, replaced.turn_id)) + 1 if replaced else 1
        prompt = await assemble_prompt(
            self.db, cast, speaker, user_turn=user_turn,
            excluding_turn=replaced.turn_id if replaced else None, budget_tokens=self.budget_tokens, take=take,
        )
        generation = control.generation = Generation(self.llm, prompt.messages, purpose=NARRATE)
        if control.cancel_requested:
            generation.cancel()
        so_far = ""
        record = partial(self._record_reply, cast, speaker, user_turn, replaced, source_id)
        try:
            async with aclosing(generation.deltas()) as deltas:
                async for delta in deltas:
                    so_far += delta
                    yield TurnUpdate(speaker.name, speaker.character_id, so_far, done=False)
        except (asyncio.CancelledError, GeneratorExit):
            # The consumer went away mid-stream: keep what was said (if anything), marked truncated.
            await generation.aclose()
            if so_far:
                await asyncio.shield(record(so_far, True))
            raise
        finally:
            await generation.aclose()
        truncated = generation.stopped
        reply = await asyncio.shield(record(so_far if truncated else so_far.strip(), truncated))
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
            if user_turn is not None:
                await digest_state.consume_pending_digests(tx, chat_id, user_turn.turn_id)
            if text.strip():
                await record_turn_memory(
                    tx, chat_id, user_turn=user_turn, reply_turn=reply, speaker_name=speaker.name,
                    present=cast.present_ids, you_present=True,
                )
                await apply_exchange_edges(tx, chat_id, reply.turn_id, speaker.character_id)
        if self.after_turn_steps:
            after = AfterTurn(self.db, self.llm, chat_id, user_turn, reply, tuple(cast.present_ids))
            self._after_work[chat_id] = asyncio.create_task(self._run_after_turn(after))
        return reply

    async def _run_after_turn(self, after: AfterTurn) -> None:
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
    return TurnUpdate(cast.name_of(turn.speaker), turn.speaker, turn.text, True, turn.truncated, str(turn.turn_id))
