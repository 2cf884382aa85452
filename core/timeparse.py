"""Reading story durations ("2h30m", "an hour") and story times ("9am tomorrow") from text.

Durations use pytimeparse, with a few spoken forms on top ("an hour", "half an
hour", "two days", "a couple of hours"). Times use dateparser with the chat's
clock as the relative base, preferring the future (a jump never goes back in time
unless the text says so). Both return None for text they cannot read.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pytimeparse import parse as parse_seconds

DURATION_EXAMPLES = "`30m`, `2h`, `1h30m`, `an hour`, `half an hour`, `3 days`"
TIME_EXAMPLES = "`9am`, `tomorrow 9am`, `noon`, `in two hours`, `next monday`"

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3, "several": 3,
}
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000, "year": 31536000}
_SPOKEN = re.compile(
    r"^(?P<half>half an? )?(?:(?P<count>\d+(?:\.\d+)?|" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True))
    + r")\s+)?(?P<and_half>and a half )?(?P<unit>second|minute|hour|day|week|month|year)s?(?P<trailing_half> and a half)?$"
)
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: str) -> timedelta | None:
    """A positive duration of at most ten years, or None."""
    cleaned = " ".join(text.lower().strip().split())
    if not cleaned:
        return None
    seconds = parse_seconds(cleaned)
    if seconds is None:
        seconds = _spoken_seconds(cleaned)
    if seconds is None or seconds <= 0:
        return None
    duration = timedelta(seconds=seconds)
    return duration if duration <= MAX_DURATION else None


def _spoken_seconds(text: str) -> float | None:
    if text.startswith("half an ") or text.startswith("half a "):
        match = _SPOKEN.match(text)
        return _UNITS[match.group("unit")] / 2 if match else None
    match = _SPOKEN.match(text)
    if not match:
        return None
    count_text = match.group("count") or "1"
    count = float(count_text) if count_text[0].isdigit() else _NUMBER_WORDS[count_text]
    if match.group("and_half") or match.group("trailing_half"):
        count += 0.5
    return count * _UNITS[match.group("unit")]


def parse_story_time(text: str, now: datetime) -> datetime | None:
    """The story time `text` names, relative to the chat clock `now`; None if unreadable."""
    if not text.strip():
        return None
    import dateparser  # ~12 MB resident: loaded on the first time expression, not by every process at start

    return dateparser.parse(
        text,
        languages=["en"],
        settings={"RELATIVE_BASE": now, "PREFER_DATES_FROM": "future", "RETURN_AS_TIMEZONE_AWARE": False},
    )
