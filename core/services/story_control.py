"""The player's controls over the story: edit the latest line, take lines back, show another
take, continue a reply.  Each runs in the chat's turn (`TurnPipeline.hold`) and writes through
the one rollback (`core.services.rollback`) and the one way of writing and deriving a reply
(`core.services.replying.ReplyWriter`), so afterwards the story equals a run
that produced only what is shown.

- `edit_line`: the story's latest line now reads differently (only its author changes it).  Everything after it is taken
  back (with what it caused, and what the line itself caused: a scene it closed opens again),
  the line's text is replaced and it is owed an answer again; the caller answers it as any
  line (`post_turn`), in place.
- `take_back_line`: the story's latest line (its author's) and everything after it leave the story.
- `rewind`: the last `steps` steps: a step is the time skip or scene close the latest line
  asked for (with any narration after its reply), when there is one, else the latest line
  (with the other lines of its round) with everything after it.
- `takes` / `show_take`: the takes of the newest reply; showing another takes back what the
  shown one caused and derives what the chosen one causes (its memory at once, the after-turn
  readings and owed summaries after), exactly as writing it did.  Derived again rather than
  restored: one code path derives what a reply causes, for a new reply, a new take, a continued
  reply and a take shown again, so every consequence (present and future kinds) is exact by
  construction; restoring would need an inverse for every compensation, including those that
  delete rows.  The cost is the after-turn classifiers running again, after the take is shown.
- `continue_reply`: the newest reply goes on from where it stopped; the same turn grows
  (`turn_continued`), and what it caused is derived again from the whole reply.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from functools import partial

from core.errors import (
    LineTakenBackError,
    NoSuchTakeError,
    NothingToContinueError,
    NothingToRegenerateError,
    NothingToRewindError,
    NotLatestLineError,
    NotYourLineError,
    TurnNotFoundError,
)
from core.eventlog import Transaction
from core.services.dialogue import (
    answered_players,
    exchange_lines,
    exchange_to_regenerate,
    load_cast,
    require_character,
)
from core.services.replying import ReplyPlan, TurnUpdate, done_update
from core.services.rollback import TakenBack, reopen_scene_closed_by_line, take_back_from, undo_turn
from core.services.talk import TurnPipeline
from core.state import turns as turn_state
from core.state import world
from core.state.turns import Turn

CONTINUE_INSTRUCTION = ("[Continue {name}'s last message from where it stopped: write only what comes next, "
                        "without repeating any of it.]")


class StoryControl:
    def __init__(self, pipeline: TurnPipeline) -> None:
        self.pipeline = pipeline
        self.db = pipeline.db

    # -- lines ---------------------------------------------------------------------------

    async def edit_line(self, chat_id: str, source_id: str, text: str, player: str) -> TakenBack:
        async with self.pipeline.hold(chat_id):
            line = await self._latest_line(chat_id, source_id, "changed", player)
            async with self.db.transaction() as tx:
                done = await take_back_from(tx, chat_id, line, keep={line.turn_id})
                await turn_state.edit_turn(tx, chat_id, line.turn_id, text)
            return done

    async def take_back_line(self, chat_id: str, source_id: str, player: str) -> TakenBack:
        async with self.pipeline.hold(chat_id):
            line = await self._latest_line(chat_id, source_id, "taken back", player)
            async with self.db.transaction() as tx:
                return await take_back_from(tx, chat_id, line)

    async def rewind(self, chat_id: str, steps: int) -> tuple[TakenBack, int]:
        """Take back the last `steps` steps (see the module docstring); (what was taken back, how many steps)."""
        async with self.pipeline.hold(chat_id):
            await world.require_chat(self.db, chat_id)
            done, taken = TakenBack(), 0
            async with self.db.transaction() as tx:
                while taken < steps and await _rewind_step(tx, chat_id, done):
                    taken += 1
            if not taken:
                raise NothingToRewindError("There is nothing to take back: the story holds no line of yours yet.")
            return done, taken

    async def _latest_line(self, chat_id: str, source_id: str, what: str, player: str) -> Turn:
        await world.require_chat(self.db, chat_id)
        line = await turn_state.get_turn_by_source(self.db, chat_id, source_id)
        if line is None or line.role != "user":
            raise TurnNotFoundError(source_id, "not a line of this story")
        if line.is_withdrawn:
            raise LineTakenBackError(source_id)
        if line.speaker != player:
            raise NotYourLineError(source_id, line.speaker)
        latest = await turn_state.latest_line(self.db, chat_id)
        if latest is None or latest.turn_id != line.turn_id:
            raise NotLatestLineError(source_id, f"only the latest line can be {what}")
        return line

    # -- takes -------------------------------------------------------------------------

    async def takes(self, chat_id: str) -> tuple[Turn, list[Turn]]:
        """The newest reply and its takes (oldest first)."""
        replaced = (await exchange_to_regenerate(self.db, chat_id)).replaced
        if replaced is None:
            raise NothingToRegenerateError(chat_id, "The newest line has no reply yet, so there are no takes to show.")
        return replaced, await turn_state.takes(self.db, replaced.turn_id)

    async def show_take(self, chat_id: str, number: int) -> TurnUpdate:
        """Show take `number` (1-based) of the newest reply in place of the one shown."""
        async with self.pipeline.hold(chat_id):
            cast = await load_cast(self.db, chat_id)
            exchange = await exchange_to_regenerate(self.db, chat_id)
            shown, takes = await self.takes(chat_id)
            if not 1 <= number <= len(takes):
                raise NoSuchTakeError(number, len(takes))
            chosen = takes[number - 1]
            answering = answered_players(await exchange_lines(self.db, exchange.user_turn))
            if chosen.turn_id == shown.turn_id:
                return done_update(cast, shown, answering)
            speaker = cast.get(chosen.speaker) or await require_character(self.db, chosen.speaker)
            async with self.db.transaction() as tx:
                await undo_turn(tx, chat_id, shown)
                await turn_state.show_sibling(tx, chat_id, shown.turn_id, chosen.turn_id)
                chosen = await turn_state.require_turn(tx, chosen.turn_id)
                await self.pipeline.writer.record_memory(tx, cast, speaker, exchange.user_turn, chosen)
            await self.pipeline.writer.derive(cast, speaker, exchange.user_turn, chosen)
            return done_update(cast, chosen, answering)

    # -- continue ------------------------------------------------------------------------

    async def continue_reply(self, chat_id: str) -> AsyncGenerator[TurnUpdate, None]:
        async with self.pipeline.hold(chat_id):
            cast = await load_cast(self.db, chat_id)
            last = await turn_state.last_turn(self.db, chat_id)
            if last is None or last.role != "assistant":
                raise NothingToContinueError("There is no reply to continue: the story's last turn is not a character's.")
            exchange = await exchange_to_regenerate(self.db, chat_id)
            speaker = cast.get(last.speaker) or await require_character(self.db, last.speaker)
            plan = ReplyPlan(prepare=partial(undo_turn, chat_id=chat_id, turn=last), continues=last,
                             as_of=last.turn_id + 1)  # the reply so far is in view, nothing after it
            control = self.pipeline.start_generation(chat_id)
            try:
                instruction = CONTINUE_INSTRUCTION.format(name=speaker.name)
                reply = self.pipeline.writer.write_reply(cast, speaker, exchange.user_turn, None, control, instruction, plan=plan)
                async with aclosing(reply) as updates:
                    async for update in updates:
                        yield update
            finally:
                self.pipeline.end_generation(chat_id)


async def _rewind_step(tx: Transaction, chat_id: str, done: TakenBack) -> bool:
    """Take back one step (see the module docstring); False when no line of the player's is left."""
    line = await turn_state.latest_line(tx, chat_id)
    if line is None:
        return False
    after = await turn_state.shown_story_turns_from(tx, chat_id, line.turn_id + 1)
    last_reply = max((i for i, t in enumerate(after) if t.role == "assistant"), default=-1)
    moves = after[last_reply + 1:]
    closed = await world.scene_closed_by_line(tx, chat_id, line.turn_id)
    if not moves and closed is None:
        await take_back_from(tx, chat_id, (await exchange_lines(tx, line))[0], done=done)
        return True
    if moves:
        await take_back_from(tx, chat_id, moves[0], done=done)
    if closed is not None:
        await reopen_scene_closed_by_line(tx, chat_id, closed, done)
    return True
