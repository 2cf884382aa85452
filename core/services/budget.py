"""How the prompt budget (`llm.context_tokens`) is shared out; every share scales with it.

A reply prompt keeps the card, the player's line and the post-history instructions whole (up
to `CARD_SHARE`, `TURN_SHARE` and `NOTE_SHARE` of the budget, beyond which they are cut); of the
rest, `TAIL_SHARE` is held for this turn's notes and each section in `SECTION_SHARES` may use at
most its share (the dialogue window takes what they leave).  Item caps set for the default
budget (how many turns, memories, summaries) grow with a larger one (`scaled`).  The rolling
summaries are sized by it too: a stretch of `PART_SHARE` of the budget not yet summarized
becomes a part, and every background request is built to fit the budget whole.
"""

from __future__ import annotations

from core.services.tokens import DEFAULT_CONTEXT_TOKENS

TAIL_SHARE = 0.15  # held for the notes after the player's line
SECTION_SHARES = {
    "examples": 0.15,  # only while the whole story fits beside them
    "story": 0.06,  # the character's story so far, rolled up from older scenes
    "summaries": 0.10,  # its latest scene summaries
    "scene": 0.08,  # its account of the open scene so far (the scene's top parts)
    "earlier": 0.15,  # its memories of the exchanges just before the window
    "threads": 0.05,
}
CARD_SHARE = 0.35  # a card longer than this is cut (its longest fields first) so the rest still fits
TURN_SHARE = 0.35  # a line longer than this is shown by its ends (never at the default budget: 8,000 characters fit)
NOTE_SHARE = 0.1  # the card's post-history instructions
PART_SHARE = 0.2  # an unsummarized stretch of a scene this large becomes a part
BRIEF_SHARE = 0.15  # who a character is, in a background request (its card, cut at a sentence)


def scaled(count: int, budget_tokens: int) -> int:
    """An item cap set for the default budget, for `budget_tokens`: larger in a larger context, never smaller."""
    return max(count, count * budget_tokens // DEFAULT_CONTEXT_TOKENS)


def share_tokens(share: float, budget_tokens: int) -> int:
    return int(share * budget_tokens)
