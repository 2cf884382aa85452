"""What an exchange leaves in memory: one event memory per exchange, for those present.

No model call: the memory is the exchange itself, quoted and clipped
(`MAX_QUOTE_CHARS` per side).  Witnesses are the characters present plus the
player ("you") when the player took part; `source_turn_id` is the reply turn, so
regenerating that reply retracts exactly this memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.eventlog import USER, Transaction
from core.state import memory as memory_state
from core.state.memory import Memory
from core.state.turns import Turn

MAX_QUOTE_CHARS = 400


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1].rstrip() + "…"


def exchange_text(user_turn: Turn | None, reply_text: str, speaker_name: str, player_name: str) -> str:
    """The exchange as memory holds it: the player named as they were when they said their line."""
    player_name = user_turn.speaker_name or player_name if user_turn is not None else player_name
    said = f'{player_name} said: "{_clip(user_turn.text)}" ' if user_turn is not None else ""
    return f'{said}{speaker_name} answered: "{_clip(reply_text)}"'


async def record_turn_memory(
    tx: Transaction,
    chat_id: str,
    *,
    user_turn: Turn | None,
    reply_turn: Turn,
    speaker_name: str,
    present: Iterable[str],
    you_present: bool = True,
    player_name: str,
) -> Memory | None:
    """Record the exchange (user line + reply) as a memory of everyone present; None if empty."""
    if not reply_turn.text.strip():
        return None
    witnesses = ([USER] if you_present else []) + [p for p in present if p != USER]
    return await memory_state.record_memory(
        tx, chat_id, exchange_text(user_turn, reply_turn.text, speaker_name, player_name), witnesses,
        significance=2, kind="event", scene_id=reply_turn.scene_id, story_time=reply_turn.story_time,
        source_turn_id=reply_turn.turn_id,
    )
