"""Which turns of the story a reply prompt shows verbatim: a window that moves in blocks.

A window that slid by one turn each time the story grew would change the start of the
dialogue on every turn, and a model server's prefix cache (vLLM, llama.cpp, hosted APIs)
would miss on everything after the system message.  So the window starts at a block
boundary: turn ordinals (the n-th turn the character witnessed) that are multiples of
`BLOCK_TURNS`.  While the story grows the start stays put and consecutive prompts share
everything up to the newest lines; when the dialogue outgrows its budget (or the turn
cap) the start moves to the next boundary that fits, dropping a block at once, and stays
there for a while again (a budget that holds fewer than two blocks slides turn by turn
instead: dropping a block would leave too little).

A window that leaves anything out starts on a player's line: the first one at or after the
boundary (`exchange_start`), so an exchange (the player's line and the replies to it, which
its memory holds) is either wholly in the window or wholly before it, never split.  What
falls out of the window is not forgotten: those exchanges' memories are in the prompt as
"earlier in the story", in the scene's rolling summaries, or found by recall
(`core.services.prompt`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.eventlog import Readable
from core.services.tokens import MESSAGE_OVERHEAD, ends_within, estimate_tokens
from core.state import turns as turn_state
from core.state.turns import Turn

BLOCK_TURNS = 16
NAME_TOKENS = 8  # a speaker's name folded in front of a line


@dataclass(frozen=True)
class DialogueWindow:
    turns: list[Turn]  # oldest first
    left_out: int  # witnessed turns before the window

    @property
    def first_turn_id(self) -> int | None:
        return self.turns[0].turn_id if self.turns else None


def turn_cost(turn: Turn) -> int:
    return estimate_tokens(turn.text) + NAME_TOKENS + MESSAGE_OVERHEAD


def window_start(costs: list[int], first_ordinal: int, budget: int, max_turns: int, block: int = BLOCK_TURNS) -> int:
    """The index into `costs` (the newest turns, oldest first; the first has ordinal
    `first_ordinal`) where the window starts: the earliest block boundary from which the
    turns fit `budget` and number at most `max_turns`.  The newest turn is always kept."""
    if not costs:
        return 0
    total = first_ordinal + len(costs)
    used, earliest = 0, len(costs) - 1
    for index in range(len(costs) - 1, -1, -1):
        if index < len(costs) - 1 and (used + costs[index] > budget or total - (first_ordinal + index) > max_turns):
            break
        used += costs[index]
        earliest = index
    ordinal = first_ordinal + earliest
    boundary = -(-ordinal // block) * block  # round up to a block boundary
    fitting = len(costs) - earliest
    if boundary - ordinal > fitting // 2:  # a budget this tight holds too few turns to drop whole blocks
        return earliest
    return boundary - first_ordinal


def exchange_start(turns: list[Turn], start: int) -> int:
    """`start` (an index into `turns`) moved to where no exchange is split: forward to the first
    player's line at or after it, or, when none follows, back to the last one before it."""
    for index in range(start, len(turns)):
        if turns[index].role == "user":
            return index
    for index in range(min(start, len(turns)) - 1, -1, -1):
        if turns[index].role == "user":
            return index
    return start


def clipped(turn: Turn, tokens: int | None) -> Turn:
    """`turn` with a text longer than `tokens` shown by its ends (`tokens.ends_within`)."""
    if tokens is None or estimate_tokens(turn.text) <= tokens:
        return turn
    return replace(turn, text=ends_within(turn.text, tokens))


async def dialogue_window(
    source: Readable, chat_id: str, who: str, *, up_to_turn_id: int | None, budget: int, max_turns: int,
    turn_tokens: int | None = None,
) -> DialogueWindow:
    """The turns `who` witnessed (up to `up_to_turn_id`) that the prompt shows: block-aligned,
    starting on a player's line when anything is left out; a turn longer than `turn_tokens` by its ends."""
    fetched, total = await turn_state.witnessed_turns_up_to(
        source, chat_id, who, up_to_turn_id, max_turns + BLOCK_TURNS
    )
    fetched = [clipped(t, turn_tokens) for t in fetched]
    first_ordinal = total - len(fetched)
    start = window_start([turn_cost(t) for t in fetched], first_ordinal, budget, max_turns)
    if first_ordinal + start > 0:  # something is left out: cut between exchanges
        start = exchange_start(fetched, start)
    shown = [t for t in fetched[start:] if t.text.strip()]
    return DialogueWindow(shown, first_ordinal + start)
