"""Recall by story time and order: "the first thing", "when I first woke up", "yesterday", "last night".

- `time_window(query, now)`: the span of story time or the order a query names, relative to the
  chat clock `now`, and the words left for relevance; None when it names neither (a plain word
  search).  Spans: "today", "this morning" (4 AM to noon), "this afternoon" (noon to 6 PM),
  "this evening" (6 PM to midnight), "tonight" and "last night" (6 PM to 6 AM), "yesterday"
  (with a part of day, that part), "the day before yesterday", "three days ago", "on Monday",
  "this week", "last week" (seven to thirteen days ago, as `story_clock.when_phrase` says it).
  Orders: the first memories of the story ("the first thing", "at the beginning", "when we first
  met") or the latest ("just now", "the last thing").
- `recall_by_time`: what a character witnessed in that span or order, in story order.  With words
  left, the memories that match them come first (in a span), or the earliest / latest that match
  (for an order); without matches, the span's most significant memories or the story's first /
  latest.  Witness and chat are filtered in SQL (`core.state.memory_spans`), as every recall is.
- `memories_from_time`: both at once, for a prompt builder: the memories a line's time words
  name (nothing when it names no time).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from core.eventlog import Readable
from core.state import memory as memory_state
from core.state import memory_spans
from core.state.memory import Memory

RecallOrder = Literal["first", "latest"]
HITS = 40  # word matches considered before the span or order picks among them

_PARTS = {"morning": (4, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}  # hours from midnight
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "a couple of": 2, "a few": 3}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WHO = r"(?:i|we|you|he|she|they)"


@dataclass(frozen=True)
class TimeWindow:
    """What a recall query names: a span of story time [start, end), an order, or both."""

    label: str  # the words that named it ("yesterday", "the first thing")
    words: str = ""  # the query's other content words, for relevance
    start: datetime | None = None
    end: datetime | None = None
    order: RecallOrder | None = None

    def holds(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)


def _day(date: datetime, days_back: int, part: str | None = None) -> tuple[datetime, datetime]:
    start = datetime.combine(date.date(), time()) - timedelta(days=days_back)
    first, last = _PARTS[part] if part else (0, 24)
    return start + timedelta(hours=first), start + timedelta(hours=last)


def _night(now: datetime, nights_back: int) -> tuple[datetime, datetime]:
    """The night (6 PM to 6 AM) `nights_back` nights before the current one (still the current
    one before 6 AM)."""
    return _day(now, nights_back + (1 if now.hour < 6 else 0), "night")


def _weekday(now: datetime, name: str) -> tuple[datetime, datetime]:
    """The last such weekday before today."""
    back = (now.weekday() - _WEEKDAYS.index(name)) % 7 or 7
    return _day(now, back)


_Span = Callable[[re.Match[str], datetime], tuple[datetime, datetime]]
_SPANS: list[tuple[re.Pattern[str], _Span]] = [
    (re.compile(r"\bthe day before yesterday\b"), lambda m, now: _day(now, 2)),
    (re.compile(r"\b(?:yesterday night|last night)\b"), lambda m, now: _night(now, 1)),
    (re.compile(r"\byesterday(?: (morning|afternoon|evening))?\b"), lambda m, now: _day(now, 1, m.group(1))),
    (re.compile(r"\b(?:tonight|this night)\b"), lambda m, now: _night(now, 0)),
    (re.compile(r"\bthis (morning|afternoon|evening)\b"), lambda m, now: _day(now, 0, m.group(1))),
    (re.compile(r"\b(?:earlier )?today\b"), lambda m, now: _day(now, 0)),
    (re.compile(r"\b(\d+|" + "|".join(_NUMBERS) + r") days ago\b"),
     lambda m, now: _day(now, int(m.group(1)) if m.group(1).isdigit() else _NUMBERS[m.group(1)])),
    (re.compile(r"\blast week\b"), lambda m, now: (_day(now, 13)[0], _day(now, 6)[0])),
    (re.compile(r"\bthis week\b"), lambda m, now: (_day(now, 6)[0], _day(now, 0)[1])),
    (re.compile(r"\b(?:on |last )?(" + "|".join(_WEEKDAYS) + r")\b"), lambda m, now: _weekday(now, m.group(1))),
]
_ORDERS: list[tuple[re.Pattern[str], RecallOrder]] = [
    (re.compile(r"\b(?:the (?:very )?first (?:thing|time|words?|day|night|moment)s?|the very first"
                r"|at (?:the )?(?:very )?(?:first|start|beginning)|in the beginning|first of all"
                rf"|when {_WHO} first|{_WHO} first|(?:how|when) (?:it|this|we) (?:all )?(?:started|began))\b"),
     "first"),
    (re.compile(r"\b(?:just now|a (?:moment|minute|little while) ago|the (?:very )?last thing|most recent(?:ly)?"
                r"|the latest)\b"), "latest"),
]


def _content_words(text: str) -> str:
    words = [w for w in re.findall(r"\w+", text.lower()) if w not in memory_state.STOPWORDS and len(w) > 1]
    return " ".join(dict.fromkeys(words))


def time_window(query: str, now: datetime) -> TimeWindow | None:
    """The span and / or order `query` names (see the module docstring); None if neither."""
    text = " ".join(query.lower().split())
    labels: list[str] = []
    start = end = None
    order: RecallOrder | None = None
    for pattern, span in _SPANS:
        if (match := pattern.search(text)) is not None:
            start, end = span(match, now)
            labels.append(match.group(0))
            text = text[:match.start()] + " " + text[match.end():]
            break
    for pattern, named in _ORDERS:
        if (match := pattern.search(text)) is not None:
            order = named
            labels.append(match.group(0))
            text = text[:match.start()] + " " + text[match.end():]
            break
    if not labels:
        return None
    return TimeWindow(" ".join(labels), _content_words(text), start, end, order)


def _story_order(memories: list[Memory]) -> list[Memory]:
    return sorted(memories, key=lambda m: (m.story_time, m.memory_id))


async def recall_by_time(
    source: Readable, chat_id: str, who: str, window: TimeWindow, limit: int = 5, *, recorded_before: int | None = None
) -> list[Memory]:
    """What `who` witnessed in `window`, at most `limit`, in story order (see the module docstring)."""
    if limit <= 0:
        return []
    matches: list[Memory] = []
    if window.words:
        hits = await memory_state.search_memories(
            source, chat_id, who, window.words, HITS, now=window.end, recorded_before=recorded_before
        )
        matches = [h.memory for h in hits if window.holds(h.memory.story_time)]
    if window.order is not None:
        if matches:
            ordered = _story_order(matches)
            return ordered[:limit] if window.order == "first" else ordered[-limit:]
        return await memory_spans.memories_between(
            source, chat_id, who, window.start, window.end, limit, order=window.order, recorded_before=recorded_before
        )
    chosen = {m.memory_id: m for m in matches[:limit]}
    if len(chosen) < limit:
        for memory in await memory_spans.memories_between(
            source, chat_id, who, window.start, window.end, limit, order="significant", recorded_before=recorded_before
        ):
            if len(chosen) < limit:
                chosen.setdefault(memory.memory_id, memory)
    return _story_order(list(chosen.values()))


async def memories_from_time(
    source: Readable, chat_id: str, who: str, text: str, now: datetime, limit: int = 5,
    *, recorded_before: int | None = None,
) -> list[Memory]:
    """The memories `who` witnessed at the time or in the order `text` names ("what did I say
    when I first woke up?", "what happened last night?"), in story order; [] when it names none."""
    window = time_window(text, now)
    if window is None:
        return []
    return await recall_by_time(source, chat_id, who, window, limit, recorded_before=recorded_before)
