"""Out-of-character lines: `((like this))` steps out of the story and is answered briefly, once.

The player talks to the storyteller, not to a character: a question about the story, a wish
for its direction, a remark.  ONE model call (purpose "ooc") answers it out of character, in a
few plain sentences, knowing who is in the story, the story's note, and the last lines the
player saw.  Neither the line nor its answer is recorded: they never enter the dialogue,
memories, summaries or routing (the adapter's received-line bookkeeping is all they leave).
"""

from __future__ import annotations

import re

from core.eventlog import Readable
from core.llm.base import ChatMessage, LLMClient
from core.services.card_text import fill, whole_sentences
from core.services.dialogue import Cast, recent_dialogue
from core.services.story_clock import time_now_line
from core.services.timeskip import NARRATOR_NAME

PURPOSE = "ooc"
SPEAKER_NAME = "Out of character"
CONTEXT_TURNS = 8
LINE_CHARS = 300
ROSTER_CHARS = 240
MAX_TOKENS = 200
_WRAPPED = re.compile(r"^\s*\(\((?P<text>.*)\)\)\s*$", re.DOTALL)


def is_out_of_character(text: str) -> bool:
    """A line wrapped in double parentheses, with something inside."""
    match = _WRAPPED.match(text)
    return match is not None and bool(match.group("text").strip())


def unwrapped(text: str) -> str:
    match = _WRAPPED.match(text)
    return match.group("text").strip() if match else text.strip()


def ooc_messages(cast: Cast, lines: list[tuple[str, str]], text: str, player: str | None = None) -> list[ChatMessage]:
    """The storyteller's request for the out-of-character line `text` by the player named `player`
    (the story's owner by default)."""
    player = player or cast.player.name
    roster = "\n".join(
        f"- {c.name}" + (f": {whole_sentences(fill(c.description, c, cast), ROSTER_CHARS)}" if c.description.strip() else "")
        for c in cast.characters
    )
    system = (
        f"You are the storyteller behind a roleplay between {player} (the player) and the characters below. "
        f"{player} has stepped out of the story to say something out of character. Answer out of character, "
        "as yourself: briefly (one to three sentences), in plain words, without roleplaying and without "
        f"going on with the story. If {player} asks for something to happen, say how you will bring it in.\n"
        f"Characters:\n{roster}\n{time_now_line(cast.chat.clock)}"
        + (f"\nThe story's note: {fill(cast.chat.note, cast.host, cast)}" if cast.chat.note.strip() else "")
    )
    said = "\n".join(f"{who}: {line[:LINE_CHARS]}" for who, line in lines)
    user = (f"The last lines of the story:\n{said}\n\n" if said else "") + f"{player}, out of character: {text}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def answer(source: Readable, llm: LLMClient, cast: Cast, text: str, player: str) -> str:
    """The storyteller's answer to `player`'s out-of-character line `text` (nothing recorded): it
    knows the last lines that player saw."""
    dialogue = await recent_dialogue(source, cast.chat.chat_id, limit=CONTEXT_TURNS, witness=player)
    lines = [(NARRATOR_NAME if t.role == "narration" else cast.name_of_turn(t), t.text) for t in dialogue if t.text.strip()]
    messages = ooc_messages(cast, lines, unwrapped(text), cast.name_of(player))
    reply = await llm.generate(messages, purpose=PURPOSE, max_tokens=MAX_TOKENS)
    return reply.strip() or "(No answer.)"
