"""Read-only views of a story for the adapters: threads, world events, memories, status, context.

Each view is a small frozen dataclass built from the read models (core/state);
counts are plain SQL in small named functions.  Memory search is the existing
witness-filtered FTS search (`core.state.memory.search_memories`), or, for a query
that names a story time or order ("yesterday", "the first thing"), recall by time
(`core.services.time_recall`), so a character (or a player) only ever finds what it
witnessed.  Each memory says when it was, as a character would put it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from core.eventlog import Readable
from core.llm import structured
from core.services.dialogue import Cast
from core.services.prompt import AssembledPrompt
from core.services.story_clock import when_phrase
from core.services.time_recall import recall_by_time, time_window
from core.state import memory as memory_state
from core.state import plans, world
from core.state import threads as thread_state
from core.state import turns as turn_state


@dataclass(frozen=True)
class ThreadInfo:
    thread_id: int
    title: str
    summary: str
    status: Literal["open", "closed"]
    opened_at: datetime
    updated_at: datetime | None
    closed_at: datetime | None
    resolution: str = ""  # how a closed thread ended


@dataclass(frozen=True)
class WorldEventInfo:
    world_event_id: int
    title: str
    description: str
    due_at: datetime | None
    status: Literal["planned", "started", "completed", "cancelled"]


@dataclass(frozen=True)
class MemoryInfo:
    text: str
    story_time: datetime
    significance: int
    when: str = ""  # the story time seen from the chat clock: "yesterday evening", "a little earlier"
    memory_id: int = 0  # what `Engine.forget_memory` takes


@dataclass(frozen=True)
class ChatStatus:
    title: str
    host_name: str
    guest_name: str | None
    clock: datetime
    scene_open: bool
    turns: int
    memories: int
    open_threads: int
    upcoming_events: int
    persona_name: str = ""  # the asking player's persona in the story
    persona_description: str = ""
    parse_failures: dict[str, int] = field(default_factory=dict)  # unusable structured answers, by purpose
    players: tuple[str, ...] = ()  # the personas of the players playing now, the owner first
    characters: tuple[str, ...] = ()  # the characters present, the host first


@dataclass(frozen=True)
class ContextSection:
    name: str
    tokens: int
    items: int


@dataclass(frozen=True)
class ContextReport:
    speaker_name: str
    budget_tokens: int
    sections: list[ContextSection]


def world_event_info(event: plans.WorldEvent) -> WorldEventInfo:
    return WorldEventInfo(event.world_event_id, event.title, event.description, event.due_at, event.status)


async def thread_infos(source: Readable, chat_id: str) -> list[ThreadInfo]:
    return [
        ThreadInfo(t.thread_id, t.title, t.summary, t.status, t.opened_at, t.updated_at, t.closed_at, t.resolution)
        for t in await thread_state.list_threads(source, chat_id)
    ]


async def world_event_infos(source: Readable, chat_id: str) -> list[WorldEventInfo]:
    return [world_event_info(e) for e in await plans.list_world_events(source, chat_id)]


async def search_memory_infos(source: Readable, chat_id: str, who: str, query: str, limit: int) -> list[MemoryInfo]:
    """What `who` remembers of `query`: by story time or order when it names one (in story
    order), else by words (best first)."""
    clock = await world.get_clock(source, chat_id)
    window = time_window(query, clock)
    if window is not None:
        memories = await recall_by_time(source, chat_id, who, window, limit)
    else:
        memories = [h.memory for h in await memory_state.search_memories(source, chat_id, who, query, limit)]
    return memory_infos(memories, clock)


def memory_infos(memories: list[memory_state.Memory], clock: datetime) -> list[MemoryInfo]:
    return [MemoryInfo(m.text, m.story_time, m.significance, when_phrase(m.story_time, clock), m.memory_id)
            for m in memories]


async def recent_memory_infos(source: Readable, chat_id: str, who: str, limit: int) -> list[MemoryInfo]:
    """What `who` remembers most recently, in story order."""
    clock = await world.get_clock(source, chat_id)
    return memory_infos(await memory_state.recent_memories_for(source, chat_id, who, limit), clock)


async def chat_status(source: Readable, cast: Cast, player: str) -> ChatStatus:
    """The story at a glance, as `player` sees it (their persona)."""
    chat_id = cast.chat.chat_id
    guest = cast.characters[1].name if len(cast.characters) > 1 else None
    persona = cast.persona_of(player) or cast.player
    return ChatStatus(
        cast.chat.title, cast.host.name, guest, cast.chat.clock, await world.has_open_scene(source, chat_id),
        await turn_state.count_shown_turns(source, chat_id), await memory_state.count_live_memories(source, chat_id),
        await thread_state.count_open_threads(source, chat_id), await plans.count_upcoming_events(source, chat_id),
        persona.name, persona.description, dict(structured.parse_failures),
        tuple(p.name for p in cast.present_players), tuple(c.name for c in cast.characters),
    )


def context_report(speaker_name: str, prompt: AssembledPrompt) -> ContextReport:
    sections = [
        ContextSection(name, prompt.section_tokens.get(name, 0), prompt.section_items.get(name, 0))
        for name in prompt.section_tokens
    ]
    return ContextReport(speaker_name, prompt.budget_tokens, sections)


SELF = ("you", "me", "player", "user")  # how a player names themself in `!memory you`


def player_or(ident: str, player: str) -> str | None:
    """`player` when `ident` is how a player names themself, else None (a character to resolve)."""
    return player if ident.strip().lower() in SELF else None
