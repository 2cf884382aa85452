"""Which character answers the player's line: the one routing call before narration.

Only asked when more than one character is present (DESIGN: latency rule). It is
ONE classifier request, purpose "addressee", answered as an `AddresseeDecision`.
Anything unusable falls back to a safe choice and is logged, never raised:
invalid JSON or an unknown speaker -> the host; an unreachable model -> the host;
"low" confidence -> whoever spoke last (the player is most likely still talking
to them), else the host.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from core.llm.base import ChatMessage, LLMClient
from core.llm.structured import generate_json
from core.services.dialogue import Cast
from core.state import world
from core.state.turns import Turn

log = logging.getLogger(__name__)

PURPOSE = "addressee"
CONTEXT_TURNS = 6
LINE_CHARS = 300


class AddresseeDecision(BaseModel):
    """The classifier's answer: the id (or name) of the character who should answer."""

    speaker: str
    confidence: Literal["high", "medium", "low"] = "medium"


def addressee_messages(cast: Cast, dialogue: Sequence[Turn], text: str) -> list[ChatMessage]:
    roster = "\n".join(
        f"- id: {c.character_id}; name: {c.name}" + (f"; {c.description[:160]}" if c.description else "")
        for c in cast.characters
    )
    context = "\n".join(f"{cast.name_of(t.speaker)}: {t.text[:LINE_CHARS]}" for t in dialogue[-CONTEXT_TURNS:])
    system = (
        "You route a roleplay chat. Several characters are present; decide which one the player's "
        "latest line is addressed to, i.e. who should answer it.\n"
        f"Characters present:\n{roster}\n"
        'Answer with JSON only: {"speaker": "<character id>", "confidence": "high" | "medium" | "low"}.'
    )
    user = (f"Recent lines:\n{context}\n\n" if context else "") + f"The player's latest line:\n{text}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _resolve(cast: Cast, answer: str) -> world.Character | None:
    wanted = answer.strip().lower()
    for character in cast.characters:
        if wanted in (character.character_id.lower(), character.name.lower()):
            return character
    return None


async def choose_addressee(
    llm: LLMClient, cast: Cast, dialogue: Sequence[Turn], text: str
) -> world.Character:
    """The character who answers `text`; the host without any model call if it is alone."""
    if len(cast.characters) == 1:
        return cast.host
    fallback = AddresseeDecision(speaker=cast.host.character_id, confidence="low")
    decision = await generate_json(
        llm, addressee_messages(cast, dialogue, text), purpose=PURPOSE, schema=AddresseeDecision,
        default=fallback, role="classifier", max_tokens=60, default_on_llm_error=True,
    )
    chosen = _resolve(cast, decision.speaker)
    if chosen is None:
        level = logging.WARNING if decision.speaker.strip() else logging.INFO
        log.log(level, "addressee: no such speaker %r; the host answers", decision.speaker)
        return cast.host
    if decision.confidence == "low" and decision is not fallback:
        last_speaker = next((cast.get(t.speaker) for t in reversed(dialogue) if t.role == "assistant"), None)
        return last_speaker or cast.host
    return chosen
