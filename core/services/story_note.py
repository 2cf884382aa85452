"""A story's standing note (its Author's Note): where a reply prompt holds it.

SillyTavern places an Author's Note "in chat at depth 4" by default: among the last messages,
close enough to the end that models follow it, yet not the last word.  The note goes in at
`NOTE_DEPTH` messages from the end of the dialogue; since a message of its own would break the
strict user / assistant alternation, it is folded, in brackets, into the player's message
there (appended to the one before that point, or put at the head of the one after it).  It is
part of no memory, summary or other prompt: only of the reply prompt, where `!context` shows it.
"""

from __future__ import annotations

from core.llm.base import ChatMessage
from core.services.card_text import fill
from core.services.dialogue import Cast
from core.state import world

NOTE_DEPTH = 4


def note_text(speaker: world.Character, cast: Cast) -> str:
    """The story's note as the speaker's prompt holds it (macros filled), or ""."""
    note = cast.chat.note.strip()
    return f"[Author's note: {fill(note, speaker, cast)}]" if note else ""


def place_note(messages: list[ChatMessage], note: str, depth: int = NOTE_DEPTH) -> list[ChatMessage]:
    """`messages` (a system message, then user / assistant alternating, ending on user) with `note`
    folded in `depth` messages from the end (see the module docstring)."""
    if not note:
        return messages
    first = 1 if messages and messages[0]["role"] == "system" else 0
    at = max(first, len(messages) - depth)  # the note goes just before messages[at]
    placed = list(messages)
    if at < len(placed) and placed[at]["role"] == "user":
        placed[at] = {"role": "user", "content": f"{note}\n\n{placed[at]['content']}"}
    else:
        before = at - 1  # an assistant message follows: the note ends the user message before it
        placed[before] = {"role": "user", "content": f"{placed[before]['content']}\n\n{note}"}
    return placed
