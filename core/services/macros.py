"""Card macros, resolved the way SillyTavern does, so no `{{...}}` ever reaches a model.

Case-insensitive: `{{char}}` (the character's name), `{{user}}` (the player's persona name),
`{{persona}}` (the persona's description), `{{original}}` (what a card's `system_prompt` or
`post_history_instructions` replaces), `{{description}}`, `{{personality}}`, `{{scenario}}`
(the character's own fields), `{{time}}`, `{{date}}`, `{{weekday}}` (story time, never the
wall clock), `{{newline}}`, and the `<USER>` / `<BOT>` / `<CHAR>` spellings older cards use.
`{{trim}}`, `{{noop}}`, comments (`{{// ...}}`) and any macro rpbot does not know resolve to
nothing, so a stray `{{` never survives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

_MACRO = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_OLD_STYLE = re.compile(r"<(USER|BOT|CHAR)>", re.IGNORECASE)


@dataclass(frozen=True)
class MacroValues:
    char: str
    user: str
    clock: datetime | None = None
    persona: str = ""
    original: str = ""
    description: str = ""
    personality: str = ""
    scenario: str = ""


def story_time(clock: datetime) -> str:
    """How prompts state a story time: "Wednesday, April 1, 2026, 9:00 AM"."""
    return f"{clock:%A, %B} {clock.day}, {clock.year}, {clock_time(clock)}"


def clock_time(clock: datetime) -> str:
    """A story time's time of day: "9:00 AM", "11:40 PM"."""
    hour = clock.hour % 12 or 12
    return f"{hour}:{clock:%M} {'AM' if clock.hour < 12 else 'PM'}"


def _value(name: str, values: MacroValues) -> str:
    key = name.strip().lower()
    if key.startswith("//"):
        return ""
    simple = {
        "char": values.char, "user": values.user, "persona": values.persona, "original": values.original,
        "description": values.description, "personality": values.personality, "scenario": values.scenario,
        "newline": "\n",
    }
    if key in simple:
        return simple[key]
    if values.clock is not None:
        clock = values.clock
        if key == "time":
            return clock_time(clock)
        if key == "date":
            return f"{clock:%B} {clock.day}, {clock.year}"
        if key == "weekday":
            return f"{clock:%A}"
    return ""


def expand(text: str, values: MacroValues) -> str:
    """`text` with every macro resolved (unknown ones removed); card fields may nest macros once."""
    if not text:
        return ""
    old_style = {"user": values.user, "bot": values.char, "char": values.char}
    text = _OLD_STYLE.sub(lambda m: old_style[m.group(1).lower()], text)
    for _ in range(2):  # `{{description}}` may itself hold `{{char}}`
        if "{{" not in text:
            break
        text = _MACRO.sub(lambda m: _value(m.group(1), values), text)
    text = text.replace("{{", "").replace("}}", "") if "{{" in text else text
    return text.strip()
