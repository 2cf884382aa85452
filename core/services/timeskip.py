"""Time skips: elision ("an hour later...") and jumps ("the next morning, 9am").

`move_clock` writes a short narration of the passing time (ONE narrative call,
purpose "skip"; the prompt states the part of day at both ends) and then, in one
transaction, records it as a narration turn and sets the chat clock.  Planned world
events due within the span (from the old clock to the new one, both included) are
listed in that prompt for the narration to tell, and start with the move: each
`world_event_transitioned` to "started" at its due time, with the narration turn as its
cause.  Events due later stay planned.  If the model fails (a timeout, an unreachable
server) the error propagates to the caller and nothing changes.  A move that does not go
forward in story time, or moves it by more than `MAX_TIME_MOVE` at once (a skip of
millions of days would overflow the calendar), raises `InvalidTimeError` before any
model call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import InvalidTimeError
from core.eventlog import Database
from core.llm.base import ChatMessage, LLMClient
from core.services.dialogue import Cast, join_names, players_phrase, recent_dialogue
from core.services.macros import clock_time, story_time
from core.services.story_clock import part_of_day
from core.services.tokens import (
    DEFAULT_CONTEXT_TOKENS,
    estimate_prompt_tokens,
    estimate_tokens,
    last_lines_within,
    take_within,
)
from core.state import plans, world
from core.state import threads as thread_state
from core.state import turns as turn_state
from core.state.plans import WorldEvent
from core.state.threads import PlotThread
from core.state.turns import Turn

PURPOSE = "skip"
NARRATOR = "narrator"  # the speaker id of narration turns
NARRATOR_NAME = "Narrator"
CONTEXT_TURNS = 6
LINE_CHARS = 300
MAX_TIME_MOVE = timedelta(days=100 * 365)
MAX_TIME_MOVE_TEXT = "100 years"


def check_time_move(old: datetime, new: datetime) -> None:
    """InvalidTimeError unless `new` is after `old` by at most MAX_TIME_MOVE."""
    if new <= old:
        raise InvalidTimeError(f"story time {new:%Y-%m-%d %H:%M} is not after the chat clock {old:%Y-%m-%d %H:%M}")
    if new - old > MAX_TIME_MOVE:
        raise InvalidTimeError(f"time may move at most {MAX_TIME_MOVE_TEXT} at once")


def time_after(clock: datetime, duration: timedelta) -> datetime:
    """`clock + duration`, for a skip: InvalidTimeError unless it moves forward by at most MAX_TIME_MOVE."""
    if duration <= timedelta(0):
        raise InvalidTimeError(f"a skip must move time forward, not by {duration}")
    if duration > MAX_TIME_MOVE:
        raise InvalidTimeError(f"a skip may move time at most {MAX_TIME_MOVE_TEXT} at once")
    return clock + duration


@dataclass(frozen=True)
class SkipResult:
    """A time skip or jump: its narration, the new chat clock, and whether the scene closed first."""

    narration: str
    clock: datetime
    scene_closed: bool


def describe(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")) if n]
    return ", ".join(parts) or "a moment"


def _at(moment: datetime) -> str:
    return f"{story_time(moment)} ({part_of_day(moment)})"


def _when_due(due: datetime, old: datetime) -> str:
    """When an event falls in a skip: "At 7:00 AM" the same day, else with its day and date."""
    hour = clock_time(due)
    return f"At {hour}" if due.date() == old.date() else f"On {due:%A, %B} {due.day}, at {hour}"


def event_lines(events: list[WorldEvent], old: datetime) -> list[str]:
    return [
        f"- {_when_due(e.due_at or old, old)}: {e.title}" + (f" ({e.description})" if e.description else "")
        for e in events
    ]


def skip_messages(
    cast: Cast, dialogue: list[Turn], old: datetime, new: datetime, due: list[WorldEvent] | None = None,
    threads: list[PlotThread] | None = None, context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> list[ChatMessage]:
    """The narrator's request: it knows everything (every open thread, every event due), as far
    as `context_tokens` holds: the events due first (the soonest), then the threads, then the
    recent lines, each in what the others leave."""
    player = join_names([p.name for p in cast.present_players])
    names = ", ".join(c.name for c in cast.characters)
    context = "\n".join(
        f"{NARRATOR_NAME if t.role == 'narration' else cast.name_of_turn(t)}: {t.text[:LINE_CHARS]}"
        for t in dialogue if t.text.strip()
    )
    system = (
        f"You are the narrator of a roleplay between {players_phrase(cast)} and {names}. Time passes in the "
        "story: write one to three sentences of narration bridging the gap (an elision), in the present "
        f"tense, without dialogue and without deciding anything for {player}."
    )
    room = context_tokens - estimate_prompt_tokens([{"role": "system", "content": system},
                                                    {"role": "user", "content": " " * 400}])
    planned = take_within(event_lines(due or [], old), room // 3)
    if len(planned) < len(due or []):
        planned.append(f"- And {len(due or []) - len(planned)} more.")
    open_threads = "\n".join(take_within(
        [f"- {t.title}" + (f": {t.summary}" if t.summary else "") for t in threads or []], room // 3))
    context = last_lines_within(context, room - estimate_tokens(open_threads) - estimate_tokens("\n".join(planned)))
    user = (
        (f"Open threads of the story:\n{open_threads}\n\n" if open_threads else "")
        + (f"Recent lines:\n{context}\n\n" if context else "")
        + f"Time passes: {describe(new - old)}, from {_at(old)} to {_at(new)}."
        + (("\nPlanned events happen in that time; tell each of them, in order:\n" + "\n".join(planned))
           if planned else "")
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def move_clock(
    db: Database,
    llm: LLMClient,
    cast: Cast,
    new_clock: datetime,
    *,
    reason: str,
    source_id: str | None = None,
    scene_closed: bool = False,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> tuple[SkipResult, Turn]:
    """Narrate the passing time, record the narration turn, set the clock to `new_clock` and
    start the planned world events the move passes (see the module docstring)."""
    chat_id = cast.chat.chat_id
    old = await world.get_clock(db, chat_id)
    new_clock = new_clock.replace(tzinfo=None, microsecond=0)
    check_time_move(old, new_clock)
    dialogue = await recent_dialogue(db, chat_id, limit=CONTEXT_TURNS)
    due = await plans.world_events_due_between(db, chat_id, old, new_clock)
    threads = await thread_state.open_threads_known_by(db, chat_id, None)  # the narrator knows them all
    messages = skip_messages(cast, dialogue, old, new_clock, due, threads, context_tokens)
    text = (await llm.generate(messages, purpose=PURPOSE, max_tokens=200)).strip()
    text = text or f"{describe(new_clock - old).capitalize()} later."
    async with db.transaction() as tx:
        await world.set_clock(tx, chat_id, new_clock, reason)
        turn, _ = await turn_state.record_turn(tx, chat_id, "narration", NARRATOR, text, source_id=source_id)
        narrated = {e.world_event_id for e in due}
        for event in await plans.world_events_due_between(tx, chat_id, old, new_clock):
            if event.world_event_id not in narrated:  # planned while the narration was written: not told
                continue
            await plans.transition_world_event(
                tx, chat_id, event.world_event_id, "started", cause_turn_id=turn.turn_id, at=event.due_at
            )
    return SkipResult(text, new_clock, scene_closed), turn


async def skip_target(db: Database, chat_id: str, duration: timedelta) -> datetime:
    return time_after(await world.get_clock(db, chat_id), duration)
