"""What an exchange leaves in memory: one event memory per exchange, for those who witnessed it.

No model call: the memory is the exchange itself, quoted and clipped (`MAX_QUOTE_CHARS` per
line): each player's line, named as they were when they said it, then the reply.  Its
witnesses are those who witnessed every turn of it (the players playing and the characters
present when each was said, `turn_witnesses`), so a player or character who came in between
remembers none of it; `source_turn_id` is the reply turn, so regenerating that reply retracts
exactly this memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.eventlog import Transaction
from core.state import memory as memory_state
from core.state import turns as turn_state
from core.state.memory import Memory
from core.state.turns import Turn

MAX_QUOTE_CHARS = 400


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"


def exchange_text(lines: Sequence[Turn], reply_text: str, speaker_name: str, name_of: Callable[[Turn], str]) -> str:
    """The exchange as memory holds it: each player's line by the name it was said under, then the reply."""
    said = "".join(f'{name_of(line)} said: "{_clip(line.text)}" ' for line in lines)
    return f'{said}{speaker_name} answered: "{_clip(reply_text)}"'


async def record_turn_memory(
    tx: Transaction,
    chat_id: str,
    *,
    lines: Sequence[Turn],
    reply_turn: Turn,
    speaker_name: str,
    name_of: Callable[[Turn], str],
) -> Memory | None:
    """Record the exchange (the player lines it answers, and the reply) as a memory of everyone who
    witnessed all of it; None if the reply is empty."""
    if not reply_turn.text.strip():
        return None
    witnesses = await turn_state.common_witnesses(tx, [*(line.turn_id for line in lines), reply_turn.turn_id])
    return await memory_state.record_memory(
        tx, chat_id, exchange_text(lines, reply_turn.text, speaker_name, name_of), witnesses,
        significance=2, kind="event", scene_id=reply_turn.scene_id, story_time=reply_turn.story_time,
        source_turn_id=reply_turn.turn_id,
    )
