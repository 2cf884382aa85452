"""Checks on text the engine is given, before anything is written.

A player's line must be readable (valid Unicode that can be stored: no lone surrogates),
not empty, and at most `MAX_LINE_CHARS` long: a longer line would crowd the rest of the
story out of the next prompt. A story's own scenario may hold at most `MAX_SCENARIO_CHARS`,
its standing note at most `MAX_NOTE_CHARS`.
Other text arguments (a premise, a planned event, a memory query) must be readable. Each
failure is an `InvalidInputError` saying what to change.
"""

from __future__ import annotations

from core.errors import InvalidInputError

MAX_LINE_CHARS = 8_000
MAX_SCENARIO_CHARS = 4_000
MAX_NOTE_CHARS = 1_000


def check_readable(text: str, what: str = "The text") -> str:
    """`text` if it can be stored as UTF-8; InvalidInputError otherwise."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInputError(
            f"{what} cannot be read: it holds a broken character at position {error.start}. Send it again."
        ) from error
    return text


def check_line(text: str) -> str:
    """A player's in-story line, checked (see the module docstring)."""
    check_readable(text, "That line")
    if not text.strip():
        raise InvalidInputError("That line is empty: say something, or type `!help`.")
    if len(text) > MAX_LINE_CHARS:
        raise InvalidInputError(
            f"That line is too long: {len(text):,} characters, and a line may hold at most {MAX_LINE_CHARS:,}. "
            "Split it into shorter lines."
        )
    return text


def check_scenario(text: str) -> str:
    """A story's own scenario, checked and stripped (see the module docstring)."""
    check_readable(text, "The scenario")
    if len(text) > MAX_SCENARIO_CHARS:
        raise InvalidInputError(
            f"That scenario is too long: {len(text):,} characters, and a scenario may hold at most "
            f"{MAX_SCENARIO_CHARS:,}. Say it in fewer words."
        )
    return text.strip()


def check_note(text: str) -> str:
    """A story's standing note, checked and stripped (see the module docstring)."""
    check_readable(text, "The note")
    text = text.strip()
    if len(text) > MAX_NOTE_CHARS:
        raise InvalidInputError(
            f"That note is too long: {len(text):,} characters, and a note may hold at most {MAX_NOTE_CHARS:,}. "
            "A note works best as a sentence or two."
        )
    return text
