"""Rolling summaries of a long open scene: each present character's parts, written as the scene goes.

After every reply, `SummaryJobs` runs `write_due_parts` for the chat in the background: when
the open main scene holds a stretch not yet in a part of `PART_TURNS` turns or `PART_SHARE` of
the budget, each character present writes one (purpose "scene_part", the narrative model): a
few sentences in the first person of that stretch of what it witnessed, with the part before it
for continuity.  A part is a memory of kind "summary" (`summary_of` "part", significance 2),
witnessed by that character and the players who saw all of that stretch, like a scene summary; it records
the turns it covers (`covers_from_turn` / `covers_to_turn`), so regenerating or rewinding any
of them retracts it (`rollback.undo_turn`).  When a character's top parts of the scene
number more than `TOP_PARTS`, or outgrow the scene's share of a prompt, its two oldest are
rolled into one covering both (same purpose); the two stay for recall, and the prompt shows
the top parts only.  So however long a scene runs, each character has the gist of all of it.

The chat's next turn never waits for this work (it is not the pipeline's after-work): a job runs
alone per chat, a request made while one runs runs once more after it, and a part is recorded
only if every turn it covers is still shown, so a regenerate that got there first wins.  The
same writer, with the room a scene close leaves, brings the parts up to date before the close
summarizes them (`scenes.apply_scene_close_summary`).  Every request fits the budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from core.eventlog import Database, Readable
from core.keyed_locks import KeyedLocks
from core.llm.base import ChatMessage, LLMClient
from core.services.budget import BRIEF_SHARE, PART_SHARE, SECTION_SHARES, share_tokens
from core.services.card_text import brief_within, whole_sentences
from core.services.dialogue import Cast, load_cast
from core.services.macros import story_time
from core.services.tokens import estimate_tokens
from core.services.transcripts import line_cost, stretch_within, transcript
from core.state import memory as memory_state
from core.state import summaries, world
from core.state import turns as turn_state
from core.state.memory import Memory
from core.state.turns import Turn

log = logging.getLogger(__name__)

PURPOSE = "scene_part"
PART_TURNS = 24  # a stretch of this many turns not yet in a part becomes one (or PART_SHARE of the budget)
TOP_PARTS = 4  # a character's top parts of one scene; beyond, the two oldest are rolled into one
PART_MAX_TOKENS = 300
MAX_ROLLS = 3  # roll-ups per character per job (each job catches up a little more)

_writing = KeyedLocks()  # one writer of a chat's parts at a time (background job or scene close)


def part_tokens(context_tokens: int) -> int:
    """How large an unsummarized stretch grows before it becomes a part (and how large a part's stretch is)."""
    return share_tokens(PART_SHARE, context_tokens)


def brief(character: world.Character, cast: Cast, context_tokens: int) -> str:
    """Who `character` is, within its share of a background request."""
    return brief_within(character, cast, share_tokens(BRIEF_SHARE, context_tokens) * 4)


def part_messages(
    cast: Cast, character: world.Character, scene: world.Scene, stretch: str, before: str, context_tokens: int
) -> list[ChatMessage]:
    name = character.name
    others = [cast.name_of(p) for p in scene.present if p != character.character_id]
    system = (
        f"You are {name}. Who you are:\n{brief(character, cast, context_tokens)}\n\n"
        f"A scene is still going on (it began {story_time(scene.started_at)}). Write {name}'s own short account of "
        f"the stretch of it below: at most four sentences, in the first person (\"I\") and the past tense, only what "
        f"{name} saw, heard and felt. Keep the names, places and things that matter. No heading, no quotes."
    )
    user = f"Also there: {', '.join(others) or 'nobody else'}.\n"
    if before:
        user += f"What you noted just before:\n{before}\n\n"
    return [{"role": "system", "content": system}, {"role": "user", "content": user + f"The stretch:\n{stretch}"}]


def roll_messages(
    cast: Cast, character: world.Character, scene: world.Scene, first: str, second: str, context_tokens: int
) -> list[ChatMessage]:
    name = character.name
    system = (
        f"You are {name}. Who you are:\n{brief(character, cast, context_tokens)}\n\n"
        f"A scene is still going on (it began {story_time(scene.started_at)}). Below are two accounts {name} wrote of "
        f"it, one after the other. Write one account of both: at most five sentences, in the first person and the "
        "past tense. Keep the names, places and things that matter. No heading."
    )
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"The earlier account:\n{first}\n\nThe later account:\n{second}"}]


async def parts_may_be_due(source: Database, scene_id: int | None, context_tokens: int) -> bool:
    """A cheap check after a reply: whether the scene's unsummarized stretch is long enough for a
    part (one query; `write_due_parts` decides per character)."""
    if scene_id is None:
        return False
    turns, chars = await summaries.unsummarized_stretch(source, scene_id)
    return turns >= PART_TURNS or chars // 4 >= part_tokens(context_tokens)


async def write_due_parts(db: Database, llm: LLMClient, chat_id: str, *, context_tokens: int) -> int:
    """The background job: parts of the open main scene's stretches that are due; returns how many."""
    scene = await world.current_scene(db, chat_id)
    if scene is None:
        return 0
    return await write_parts(db, llm, chat_id, scene, context_tokens=context_tokens)


async def write_parts(
    db: Database, llm: LLMClient, chat_id: str, scene: world.Scene, *, context_tokens: int,
    leave_tokens: int | None = None, only: list[str] | None = None,
) -> int:
    """For each character present (with `only`, those), parts of the scene while its unsummarized
    stretch is due: `PART_TURNS` turns or a part's worth of tokens, or with `leave_tokens` (a
    scene close), more than that many tokens; then its top parts rolled up.  Returns the parts written."""
    async with _writing.hold(chat_id):
        cast = await load_cast(db, chat_id)
        written = 0
        for who in scene.present:
            character = None if cast.is_player(who) or (only is not None and who not in only) else (
                await world.get_character(db, who))
            if character is None:
                continue
            cast = replace(cast, characters=tuple({c.character_id: c for c in (*cast.characters, character)}.values()))
            written += await _write_stretches(db, llm, cast, scene, character, context_tokens, leave_tokens)
            await _roll_up(db, llm, cast, scene, character, context_tokens)
        return written


async def scene_witnesses(
    source: Readable, cast: Cast, scene: world.Scene, pov: str, covers: tuple[int, int] | None
) -> list[str]:
    """Who remembers what `pov` tells of the turns `covers` of the scene: `pov`, and each player
    present in the scene who witnessed every one of those turns that `pov` witnessed."""
    players = [p for p in scene.present if cast.is_player(p)]
    if covers is None or not players:
        return [pov, *players]
    return [pov, *await turn_state.players_who_saw_all(source, scene.scene_id, pov, covers[0], covers[1], players)]


def _due(cast: Cast, pending: list[Turn], context_tokens: int, leave_tokens: int | None) -> bool:
    cost = sum(line_cost(cast, t) for t in pending)
    if leave_tokens is not None:
        return cost > leave_tokens
    return len(pending) >= PART_TURNS or cost >= part_tokens(context_tokens)


async def _write_stretches(
    db: Database, llm: LLMClient, cast: Cast, scene: world.Scene, character: world.Character, context_tokens: int,
    leave_tokens: int | None,
) -> int:
    who, written = character.character_id, 0
    while True:
        end = await summaries.parts_end(db, scene.scene_id, who)
        pending = await turn_state.witnessed_scene_turns(db, scene.scene_id, who, after_turn_id=end)
        if not pending or not _due(cast, pending, context_tokens, leave_tokens):
            return written
        stretch = stretch_within(cast, pending, part_tokens(context_tokens), PART_TURNS)
        top = await summaries.scene_parts(db, scene.scene_id, who)
        before = top[-1].text if top else ""
        before = whole_sentences(before, PART_MAX_TOKENS * 4) if before else ""
        messages = part_messages(cast, character, scene, transcript(cast, stretch), before, context_tokens)
        text = (await llm.generate(messages, purpose=PURPOSE, role="narrative", max_tokens=PART_MAX_TOKENS)).strip()
        if not text or not await _record_part(db, cast, scene, who, text, stretch):
            return written
        written += 1


async def _record_part(db: Database, cast: Cast, scene: world.Scene, who: str, text: str, stretch: list[Turn]) -> bool:
    """Record the part unless a turn it covers stopped being shown meanwhile (False then)."""
    covers = (stretch[0].turn_id, stretch[-1].turn_id)
    async with db.transaction() as tx:
        if not await turn_state.all_shown(tx, [t.turn_id for t in stretch]):
            return False
        await memory_state.record_memory(
            tx, cast.chat.chat_id, text, await scene_witnesses(tx, cast, scene, who, covers), significance=2,
            kind="summary", pov=who, scene_id=scene.scene_id, story_time=stretch[-1].story_time,
            summary_of="part", covers=covers,
        )
    return True


def _too_many(top: list[Memory], context_tokens: int) -> bool:
    room = share_tokens(SECTION_SHARES["scene"] * 0.75, context_tokens)  # the prompt's share, less the card's part
    return len(top) > TOP_PARTS or (len(top) > 1 and sum(estimate_tokens(p.text) + 1 for p in top) > room)


async def _roll_up(
    db: Database, llm: LLMClient, cast: Cast, scene: world.Scene, character: world.Character, context_tokens: int
) -> None:
    who = character.character_id
    for _ in range(MAX_ROLLS):
        top = await summaries.scene_parts(db, scene.scene_id, who)
        if not _too_many(top, context_tokens):
            return
        first, second = top[0], top[1]
        assert first.covers_from_turn is not None and second.covers_to_turn is not None
        cap = PART_MAX_TOKENS * 4
        messages = roll_messages(cast, character, scene, whole_sentences(first.text, cap),
                                 whole_sentences(second.text, cap), context_tokens)
        text = (await llm.generate(messages, purpose=PURPOSE, role="narrative", max_tokens=PART_MAX_TOKENS)).strip()
        if not text:
            return
        async with db.transaction() as tx:
            if (await memory_state.require_memory(tx, first.memory_id)).retracted or (
                    await memory_state.require_memory(tx, second.memory_id)).retracted:
                return  # a rewind reached them meanwhile
            both = [w for w in second.witnesses if w in first.witnesses]  # who remembers both parts
            await memory_state.record_memory(
                tx, cast.chat.chat_id, text, both, significance=2, kind="summary", pov=who,
                scene_id=scene.scene_id, story_time=second.story_time, summary_of="part",
                covers=(first.covers_from_turn, second.covers_to_turn),
            )


@dataclass
class SummaryJobs:
    """Background summary work per chat: one job at a time, never awaited by the chat's next turn.
    A request while a job runs makes it run once more after; failures are logged."""

    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _again: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)

    def request(self, chat_id: str, work: Callable[[], Awaitable[object]]) -> None:
        if chat_id in self._tasks:
            self._again[chat_id] = work
            return
        self._tasks[chat_id] = asyncio.create_task(self._run(chat_id, work))

    async def _run(self, chat_id: str, work: Callable[[], Awaitable[object]]) -> None:
        try:
            while True:
                try:
                    await work()
                except Exception:
                    log.exception("rolling summaries failed for chat %s", chat_id)
                if chat_id not in self._again:
                    return
                work = self._again.pop(chat_id)
        finally:
            self._tasks.pop(chat_id, None)

    def chats(self) -> set[str]:
        return set(self._tasks)

    async def settle(self, chat_id: str | None = None) -> None:
        """Wait until the chat's (every chat's) summary work is done."""
        while True:
            pending = [t for c, t in self._tasks.items() if chat_id is None or c == chat_id]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        """Stop what runs (it is redone after the next reply)."""
        self._again.clear()
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
