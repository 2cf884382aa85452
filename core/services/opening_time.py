"""When a story begins: the time the player gives, the time its opening implies, or the default.

- `read_start_time`: the player's own words for the start (`!new wren at dusk`): times of day
  ("before dawn", "dusk", "11:40pm"), seasons ("late autumn"), months, days, years and weekdays
  are read here; anything else ("tomorrow 9am", "saturday noon") by `core.timeparse`.  None for
  text neither can read.
- `read_opening`: ONE classifier call (purpose "opening_time") reading the story's scenario and
  first message for a time of day, season or date they state or imply ("a little before dawn",
  "the third night of the blizzard").  Made only when that text has a word about time in it
  (`may_state_time`); a model that says nothing, answers nonsense or fails leaves the default.
- `start_from`: a reading made into a story time: what it names replaces that part of
  `DEFAULT_START` (Wednesday, April 1, 2026, 9:00 AM), the rest stays.  A season is a day in
  it (`SEASON_DAYS`), a part of day an hour in it (`core.services.story_clock.PART_HOURS`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from core.llm.base import ChatMessage, LLMClient
from core.llm.structured import generate_json
from core.services.card_text import nickname
from core.services.macros import MacroValues, expand
from core.services.story_clock import PART_HOURS, PARTS_OF_DAY
from core.state import world
from core.timeparse import parse_story_time

PURPOSE = "opening_time"
DEFAULT_START = datetime(2026, 4, 1, 9, 0)  # a spring morning, when nothing says otherwise
MAX_TOKENS = 300  # a short answer, with a little room for a model that thinks first
TEXT_CHARS = 1500  # of the scenario and of the first message, each
START_TIME_EXAMPLES = "`dusk`, `before dawn`, `11pm`, `a winter night`, `late autumn`, `October 14 1887 11:40pm`"

PartOfDay = Literal[
    "none", "before dawn", "early morning", "morning", "midday", "afternoon", "evening", "night", "late night"
]
Season = Literal[
    "none", "early spring", "spring", "late spring", "early summer", "summer", "late summer",
    "early autumn", "autumn", "late autumn", "early winter", "winter", "late winter",
]
SEASON_DAYS: dict[str, tuple[int, int]] = {  # (month, day) a story set in that season starts on
    "early spring": (3, 10), "spring": (4, 1), "late spring": (5, 20), "early summer": (6, 10),
    "summer": (7, 15), "late summer": (8, 20), "early autumn": (9, 10), "autumn": (10, 15),
    "late autumn": (11, 20), "early winter": (12, 10), "winter": (1, 15), "late winter": (2, 20),
}


class OpeningTime(BaseModel):
    """When a story begins, as far as its text says; every field defaults to "not stated"."""

    part_of_day: PartOfDay = "none"
    clock: str = ""  # an exact time of day, "23:40"
    season: Season = "none"
    month: int = 0
    day: int = 0
    year: int = 0


NOTHING_STATED = OpeningTime()

_TIME_WORDS = re.compile(
    r"\b(dawn|dusk|daybreak|sunrise|sunset|twilight|nightfall|midnight|noon|midday|morning|afternoon|evening"
    r"|night|nights|nighttime|tonight|overnight|moon|moonlit|moonlight|stars|starlight|candlelight|dark|darkness"
    r"|lamps?|lanterns?|sun|sunlight|spring|summer|autumn|winter|wintry|snow|snowbound|snowing|blizzard|frost"
    r"|harvest|solstice|equinox|christmas|midsummer|breakfast|lunch|supper|dinner|o'clock|\d{1,2} ?[ap]\.?m\b"
    r"|january|february|march|april|june|july|august|september|october|november|december"
    r"|(?:1\d|20)\d\d)\b",
    re.IGNORECASE,
)


def may_state_time(text: str) -> bool:
    """A cheap local check: could `text` say when the story is?  (No call otherwise.)"""
    return _TIME_WORDS.search(text) is not None


def opening_messages(scenario: str, greeting: str) -> list[ChatMessage]:
    parts = ", ".join(f'"{part}"' for part in PARTS_OF_DAY)
    seasons = ", ".join(f'"{season}"' for season in SEASON_DAYS)
    system = (
        "You read the opening of a roleplay story (its scenario and its first message) and say when the "
        "story begins: the time of day, the season, the date, as far as the text states it or plainly "
        "implies it (lamps lit against the dark mean evening or night; snow and a roaring fire mean winter). "
        "Never guess: whatever the text gives no sign of stays out of the answer.\n"
        "Answer with one JSON object and nothing else. Its fields, each left out when the text says "
        f"nothing of it: part_of_day (one of {parts}), clock (an exact time of day the text gives, as 24-hour "
        f"hours:minutes), season (one of {seasons}), month (its number, 1 to 12), day (of the month, 1 to 31), "
        "year (as a number)."
    )
    user = f"Scenario:\n{scenario[:TEXT_CHARS] or '(none)'}\n\nFirst message:\n{greeting[:TEXT_CHARS] or '(none)'}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def read_opening(llm: LLMClient, scenario: str, greeting: str) -> OpeningTime:
    """What the story's opening says of when it begins (NOTHING_STATED without a call when
    no word of it is about time; NOTHING_STATED too when the model fails or says nothing)."""
    if not may_state_time(f"{scenario}\n{greeting}"):
        return NOTHING_STATED
    return await generate_json(
        llm, opening_messages(scenario, greeting), purpose=PURPOSE, schema=OpeningTime, default=NOTHING_STATED,
        role="classifier", max_tokens=MAX_TOKENS, default_on_llm_error=True,
    )


async def opening_clock(llm: LLMClient, scenario: str, greeting: str, default: datetime = DEFAULT_START) -> datetime:
    """The story time a story with this opening starts at."""
    return start_from(await read_opening(llm, scenario, greeting), default)


async def story_start(llm: LLMClient, host: world.Character, scenario: str, player: str) -> datetime:
    """When a new story hosted by `host` begins: as its opening says (the story's own
    `scenario`, else the host's card's, and the host's greeting, macros resolved), else `DEFAULT_START`."""
    values = MacroValues(char=nickname(host), user=player)  # no clock yet: `{{time}}` and the like say nothing

    def text(field: str) -> str:
        return re.sub(r"[ \t]{2,}", " ", expand(field, values))

    return await opening_clock(llm, text(scenario or host.scenario), text(host.first_mes))


_CLOCK = re.compile(r"^\s*(\d{1,2})(?:[:.h](\d{2}))?\s*([ap])?\.?m?\.?\s*$", re.IGNORECASE)


def _clock(text: str) -> tuple[int, int] | None:
    """(hour, minute) of "23:40", "11:40 PM", "7am"; None for anything else."""
    match = _CLOCK.match(text)
    if match is None or (match.group(2) is None and match.group(3) is None):
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), (match.group(3) or "").lower()
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "p" else 0)
    return (hour, minute) if hour < 24 and minute < 60 else None


def start_from(reading: OpeningTime, default: datetime = DEFAULT_START) -> datetime:
    """`default` with what `reading` names put in: year, month and day, then the time of day."""
    year = reading.year if 1 <= reading.year <= 9999 else default.year
    month, day = default.month, default.day
    if reading.season in SEASON_DAYS:
        month, day = SEASON_DAYS[reading.season]
    if 1 <= reading.month <= 12 and reading.month != month:  # the middle of a month the text names
        month, day = reading.month, default.day if reading.month == default.month else 15
    if 1 <= reading.day <= calendar.monthrange(year, month)[1]:
        day = reading.day
    day = min(day, calendar.monthrange(year, month)[1])
    hour, minute = default.hour, default.minute
    if (exact := _clock(reading.clock)) is not None:
        hour, minute = exact
    elif reading.part_of_day in PART_HOURS:
        hour, minute = PART_HOURS[reading.part_of_day], 0
    return datetime(year, month, day, hour, minute)


# --- the player's own words for the start ---------------------------------------------------

_TIMES_OF_DAY = {  # words for a time of day -> (hour, minute)
    "before dawn": (5, 0), "small hours": (2, 0), "dead of night": (2, 0), "late night": (1, 0),
    "early morning": (7, 0), "late morning": (11, 0), "early afternoon": (14, 0), "late afternoon": (17, 0),
    "early evening": (18, 0), "late evening": (20, 30), "dawn": (6, 0), "daybreak": (6, 0), "sunrise": (6, 0),
    "morning": (9, 0), "noon": (12, 0), "midday": (12, 0), "afternoon": (15, 0), "dusk": (19, 0),
    "sunset": (19, 0), "twilight": (19, 30), "nightfall": (20, 0), "evening": (19, 0), "tonight": (22, 0),
    "night": (22, 0), "midnight": (0, 0),
}
_SEASON_WORDS = {**{s: s for s in SEASON_DAYS}, "fall": "autumn", "early fall": "early autumn", "late fall": "late autumn"}
_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name} | {
    name.lower(): n for n, name in enumerate(calendar.month_abbr) if name
}
_WEEKDAYS = {name.lower(): n for n, name in enumerate(calendar.day_name)}
_FILLER = frozenset(
    "a an the in on of at during around about just mid deep one some cold dark warm wet rainy stormy snowy foggy "
    "misty quiet long bright grey gray this that year day and after".split()
)
_TOKEN = re.compile(r"\d{1,2}(?:[:.]\d{2})?\s*(?:[ap]\.?m\.?)?(?![\w:])|\d+(?:st|nd|rd|th)?|[a-z']+")


def _phrase(words: list[str], index: int, table: Mapping[str, object]) -> tuple[str, int] | None:
    """The longest entry of `table` starting at `words[index]`, and how many words it takes."""
    for length in (3, 2, 1):
        candidate = " ".join(words[index:index + length])
        if len(words) - index >= length and candidate in table:
            return candidate, length
    return None


def _local_reading(text: str, default: datetime) -> datetime | None:
    """`text` read with the words above only; None if a word is not among them or none says a time."""
    words = _TOKEN.findall(text.lower().replace(",", " "))
    reading: dict[str, object] = {}
    time_of_day: tuple[int, int] | None = None
    weekday: int | None = None
    index = 0
    while index < len(words):
        word = words[index]
        if found := _phrase(words, index, _TIMES_OF_DAY):
            time_of_day, index = _TIMES_OF_DAY[found[0]], index + found[1]
            continue
        if found := _phrase(words, index, _SEASON_WORDS):
            reading["season"], index = _SEASON_WORDS[found[0]], index + found[1]
            continue
        index += 1
        if (clock := _clock(word)) is not None:
            time_of_day = clock
        elif word in _MONTHS:
            reading["month"] = _MONTHS[word]
        elif word in _WEEKDAYS:
            weekday = _WEEKDAYS[word]
        elif (number := re.fullmatch(r"(\d+)(?:st|nd|rd|th)?", word)) is not None:
            value = int(number.group(1))
            key = "day" if value <= 31 and not word.startswith("0") else "year" if 100 <= value <= 9999 else ""
            if not key:
                return None
            reading[key] = value
        elif word not in _FILLER:
            return None
    if not reading and time_of_day is None and weekday is None:
        return None
    start = start_from(OpeningTime.model_validate(reading), default)
    if weekday is not None and "month" not in reading and "day" not in reading:
        start += timedelta(days=(weekday - start.weekday()) % 7)
    if time_of_day is not None:
        start = start.replace(hour=time_of_day[0], minute=time_of_day[1])
    return start


def read_start_time(text: str, default: datetime = DEFAULT_START) -> datetime | None:
    """The story time a new story starts at, from the player's words (see the module docstring)."""
    if not text.strip():
        return None
    local = _local_reading(text, default)
    if local is not None:
        return local
    parsed = parse_story_time(text, default.replace(hour=0, minute=0))
    return None if parsed is None else parsed.replace(tzinfo=None, microsecond=0)
