"""Plot threads and world-event lifecycles, detected by classifiers after the fact.

- `detect_threads` (purpose "threads", classifier): given the transcript of one closed
  scene and the chat's open threads, proposes threads to open, update and close.
  Validated as `ThreadChanges`; the safe default (bad output) is no change.  A change
  that does not fit the state (unknown or closed thread) is skipped and logged.
  Transport errors propagate to the caller (scene close), which logs them.
- `detect_lifecycle` (purpose "lifecycle", classifier): after-turn work, run after the
  reply is delivered, only when the chat has planned or started world events or the
  exchange mentions a future time (`may_mention_plan`, a local regex).  It proposes
  transitions (start / complete / cancel) and newly planned events, recorded with
  `cause_turn_id` = the reply, so regenerating that reply reverts / withdraws exactly
  them (`rollback.undo_turn`).

Both prompts state the story time now with its part of day.  Times of every change are the
chat clock (set by the projections), never wall-clock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from core.errors import IllegalTransitionError, NotFoundError
from core.eventlog import Database
from core.llm.base import ChatMessage, LLMClient
from core.llm.structured import generate_json
from core.services.story_clock import time_now_line
from core.services.tokens import DEFAULT_CONTEXT_TOKENS, estimate_prompt_tokens, last_lines_within
from core.state import plans, world
from core.state import threads as thread_state
from core.timeparse import parse_story_time

log = logging.getLogger(__name__)

THREADS_PURPOSE = "threads"
LIFECYCLE_PURPOSE = "lifecycle"
EXCHANGE_CHARS = 800
STRUCTURED_MAX_TOKENS = 800  # room for a model that thinks before it answers


class NewThread(BaseModel):
    title: str
    summary: str = ""


class ThreadUpdate(BaseModel):
    thread_id: int
    summary: str
    title: str | None = None


class ThreadClose(BaseModel):
    thread_id: int
    resolution: str = ""


class ThreadChanges(BaseModel):
    """The thread detector's answer; the default (all empty) is the safe "no change"."""

    open: list[NewThread] = []
    update: list[ThreadUpdate] = []
    close: list[ThreadClose] = []


class Transition(BaseModel):
    world_event_id: int
    to: Literal["started", "completed", "cancelled"]


class NewWorldEvent(BaseModel):
    title: str
    when: str = ""  # a story time ("tomorrow at noon"); unreadable -> no due time
    description: str = ""


class LifecycleChanges(BaseModel):
    """The lifecycle classifier's answer; the default (empty) is the safe "nothing happened"."""

    transitions: list[Transition] = []
    planned: list[NewWorldEvent] = []


_PLAN_WORDS = re.compile(
    r"\b(tomorrow|tonight|next (?:day|week|month|year|morning|evening|night)|at (?:dawn|dusk|noon|midnight)"
    r"|\d{1,2} ?(?:am|pm)|o'clock|in (?:an?|\w+) (?:minutes?|hours?|days?|weeks?)|(?:mon|tues|wednes|thurs|fri|satur|sun)day"
    r"|festival|wedding|ceremony|market day|arrives?|will (?:start|begin|open|arrive))\b",
    re.IGNORECASE,
)


def may_mention_plan(text: str) -> bool:
    """A cheap local check: could `text` announce a future world event?"""
    return _PLAN_WORDS.search(text) is not None


async def needs_lifecycle(db: Database, chat_id: str, exchange: str) -> bool:
    """Whether the lifecycle classifier is worth a call for this exchange (no call otherwise)."""
    return may_mention_plan(exchange) or bool(await plans.list_world_events(db, chat_id, ["planned", "started"]))


def thread_messages(open_threads: list[thread_state.PlotThread], scene_text: str, clock: datetime) -> list[ChatMessage]:
    known = "\n".join(f"- id {t.thread_id}: {t.title} — {t.summary}" for t in open_threads) or "(none)"
    system = (
        "You track the plot threads (open story questions) of a roleplay. Given the scene that just "
        "ended and the open threads, say which new threads the scene opened, which open threads it "
        "advanced (a new one-line summary) and which it resolved. Only clear cases; when unsure, no change.\n"
        "Answer with one JSON object and nothing else, with three lists (each may be empty): "
        "open (new threads, each with a title and a one-line summary), update (each with the thread_id "
        "of an open thread listed below and its new summary), close (each with the thread_id of an open "
        "thread and how it was resolved). Use only thread ids listed below; never invent one.\n"
        + time_now_line(clock)
    )
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Open threads:\n{known}\n\nThe scene:\n{scene_text}"}]


async def detect_threads(
    db: Database, llm: LLMClient, chat_id: str, scene_text: str, *, scene_id: int | None = None,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> ThreadChanges:
    """Ask the detector about one scene's transcript and apply what fits (each change tagged
    with `scene_id`, so it can be undone with the scene's summaries); returns the answer.  The
    request fits `context_tokens`: the open threads listed are the newest that fit a third of
    it, the transcript its newest lines that fit the rest."""
    open_threads = await thread_state.list_threads(db, chat_id, "open")
    clock = await world.get_clock(db, chat_id)
    bare = estimate_prompt_tokens(thread_messages([], "", clock))
    listed: list[thread_state.PlotThread] = []
    for thread in reversed(open_threads):
        if estimate_prompt_tokens(thread_messages([thread, *listed], "", clock)) - bare > (context_tokens - bare) // 3:
            break
        listed.insert(0, thread)
    room = context_tokens - estimate_prompt_tokens(thread_messages(listed, "", clock))
    messages = thread_messages(listed, last_lines_within(scene_text, room), clock)
    changes = await generate_json(
        llm, messages, purpose=THREADS_PURPOSE, schema=ThreadChanges,
        default=ThreadChanges(), role="classifier", max_tokens=STRUCTURED_MAX_TOKENS,
    )
    # One transaction per change: a change that does not fit is rolled back alone (no savepoints).
    known = {t.title.strip().lower() for t in open_threads}
    for new in changes.open:
        if new.title.strip().lower() in known:  # the detector did not see it listed (or forgot): no second copy
            log.info("thread %r is open already; not opened twice", new.title)
        elif new.title.strip():
            await thread_state.open_thread(db, chat_id, new.title.strip(), new.summary, cause_scene_id=scene_id)
            known.add(new.title.strip().lower())
    for update in changes.update:
        await _guarded(thread_state.update_thread(db, chat_id, update.thread_id, update.summary, update.title,
                                                  cause_scene_id=scene_id),
                       "update", update.thread_id)
    for close in changes.close:
        await _guarded(thread_state.close_thread(db, chat_id, close.thread_id, close.resolution,
                                                 cause_scene_id=scene_id),
                       "close", close.thread_id)
    return changes


async def _guarded(change: Awaitable[object], what: str, ident: int) -> bool:
    try:
        await change
        return True
    except (IllegalTransitionError, NotFoundError) as error:
        log.warning("skipping %s of %s: %s", what, ident, error)
        return False


def lifecycle_messages(events: list[plans.WorldEvent], exchange: str, clock: datetime) -> list[ChatMessage]:
    listed = "\n".join(
        f"- id {e.world_event_id}: {e.title} ({e.status}"
        + (f", due {e.due_at:%b %d %H:%M}" if e.due_at else "") + ")" + (f" — {e.description}" if e.description else "")
        for e in events
    )
    system = (
        "You track planned world events of a roleplay. Given the latest exchange, say which events it "
        "clearly started, completed or cancelled (planned -> started | cancelled; started -> completed | "
        "cancelled), and which new future events it clearly announced. When unsure, nothing.\n"
        + time_now_line(clock) + "\n"
        "Answer with one JSON object and nothing else, with two lists (each may be empty): transitions "
        "(each with the world_event_id of an event listed below and to: \"started\", \"completed\" or "
        "\"cancelled\") and planned (each with a title, when it is due in story time such as \"tomorrow "
        "at noon\", and a short description). Use only event ids listed below; never invent one."
    )
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"World events:\n{listed or '(none)'}\n\nThe latest exchange:\n{exchange}"}]


async def detect_lifecycle(
    db: Database, llm: LLMClient, chat_id: str, exchange: str, cause_turn_id: int, *,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> list[Transition]:
    """Transitions the exchange caused (and events it planned), recorded with `cause_turn_id`.
    The request fits `context_tokens`: the events listed are the first that fit half of it."""
    events = await plans.list_world_events(db, chat_id, ["planned", "started"])
    if not events and not may_mention_plan(exchange):
        return []
    clock = await world.get_clock(db, chat_id)
    exchange = exchange[:EXCHANGE_CHARS * 2]
    bare = estimate_prompt_tokens(lifecycle_messages([], exchange, clock))
    listed: list[plans.WorldEvent] = []
    for event in events:
        if estimate_prompt_tokens(lifecycle_messages([*listed, event], exchange, clock)) - bare > (context_tokens - bare) // 2:
            break
        listed.append(event)
    events = listed
    changes = await generate_json(
        llm, lifecycle_messages(events, exchange, clock), purpose=LIFECYCLE_PURPOSE,
        schema=LifecycleChanges, default=LifecycleChanges(), role="classifier", max_tokens=STRUCTURED_MAX_TOKENS,
        default_on_llm_error=True,
    )
    applied = []
    for transition in changes.transitions:
        change = plans.transition_world_event(
            db, chat_id, transition.world_event_id, transition.to, cause_turn_id=cause_turn_id
        )
        if await _guarded(change, f"transition to {transition.to}", transition.world_event_id):
            applied.append(transition)
    known = {e.title.strip().lower() for e in events}
    for new in changes.planned:
        title = new.title.strip()
        if not title or title.lower() in known:
            continue
        due = parse_story_time(new.when, clock) if new.when.strip() else None
        await plans.plan_world_event(db, chat_id, title[:200], description=new.description,
                                     due_at=due if due is None or due >= clock else None, cause_turn_id=cause_turn_id)
        known.add(title.lower())
    return applied
