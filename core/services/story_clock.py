"""Story time as prompts say it: the part of day, the time now, and how long ago something was.

- `part_of_day`: "late night" (from midnight), "before dawn" (4 AM), "early morning" (6 AM),
  "morning" (9 AM), "midday" (noon), "afternoon" (2 PM), "evening" (6 PM), "night" (9 PM).
  `PART_HOURS` gives an hour inside each (a story that starts "before dawn" starts at 5 AM).
- `time_now_line`: "Story time now: Tuesday, October 11, 1887, 11:40 PM (night)."
- `when_phrase`: a past story time relative to now, as a character would put it: "a little earlier",
  "earlier this evening", "this morning", "yesterday evening", "last night", "the night before
  last", "two days ago, at night", "last week", "on March 3".
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.services.macros import story_time

_PARTS = (  # (first hour, part of day)
    (0, "late night"), (4, "before dawn"), (6, "early morning"), (9, "morning"), (12, "midday"),
    (14, "afternoon"), (18, "evening"), (21, "night"),
)
PARTS_OF_DAY = tuple(part for _, part in _PARTS)
PART_HOURS = {  # an hour well inside each part of day
    "before dawn": 5, "early morning": 7, "morning": 9, "midday": 12, "afternoon": 15, "evening": 19,
    "night": 22, "late night": 1,
}
_NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def part_of_day(moment: datetime) -> str:
    return next(part for first, part in reversed(_PARTS) if moment.hour >= first)


def time_now_line(now: datetime) -> str:
    return f"Story time now: {story_time(now)} ({part_of_day(now)})."


def _this(part: str, now_part: str) -> str:
    """A part of today as said later the same day."""
    if part == "late night":
        return "tonight" if now_part == "late night" else "last night"
    return {"night": "tonight", "before dawn": "before dawn today", "early morning": "early this morning",
            "midday": "at midday"}.get(part, f"this {part}")


def _at(part: str) -> str:
    return {"before dawn": "before dawn", "early morning": "early in the morning", "midday": "at midday",
            "night": "at night", "late night": "at night"}.get(part, f"in the {part}")


def when_phrase(then: datetime, now: datetime) -> str:
    """When `then` was, seen from `now` (story times).  Story time stands still while people
    talk (only skips and jumps move it), so anything within 20 minutes is "a little earlier"."""
    if then >= now or now - then < timedelta(minutes=20):
        return "a little earlier"
    part = part_of_day(then)
    days = (now.date() - then.date()).days
    if days == 0:
        if now - then < timedelta(hours=1):
            return "less than an hour ago"
        now_part = part_of_day(now)
        return f"earlier {_this(part, now_part)}" if part == now_part and part != "midday" else _this(part, now_part)
    if days == 1:
        if part == "late night":  # the small hours of yesterday: the night before the last one
            return "the night before last"
        if part == "night":
            return "last night"
        return "yesterday " + ("at midday" if part == "midday" else part.removeprefix("early "))
    if days < 7:
        return f"{_NUMBERS.get(days, str(days))} days ago, {_at(part)}"
    if days < 14:
        return "last week"
    if then.year == now.year:
        return f"on {then:%B} {then.day}"
    return f"on {then:%B} {then.day}, {then.year}"
