"""Transcripts of turns for background requests (summaries, threads), fitted to a token budget.

One line per turn, `Name: text` (the text cut at `LINE_CHARS`).  `newest_within` keeps the
newest lines that fit and says when earlier ones were left out; `lines_within` takes turns from
the oldest while they fit (for a part, a stretch from where the last one ended).
"""

from __future__ import annotations

from core.services.dialogue import Cast
from core.services.tokens import estimate_tokens
from core.state.turns import Turn

LINE_CHARS = 600
LEFT_OUT = "[Earlier lines of the scene are left out.]"
NARRATION = "Narrator"


def line_of(cast: Cast, turn: Turn) -> str:
    who = NARRATION if turn.role == "narration" else cast.name_of_turn(turn)
    return f"{who}: {turn.text[:LINE_CHARS]}"


def line_cost(cast: Cast, turn: Turn) -> int:
    return estimate_tokens(line_of(cast, turn)) + 1


def transcript(cast: Cast, turns: list[Turn]) -> str:
    return "\n".join(line_of(cast, t) for t in turns if t.text.strip())


def newest_within(cast: Cast, turns: list[Turn], tokens: int) -> str:
    """The newest lines of `turns` that fit in `tokens`, oldest first, after a note when some are left out."""
    kept: list[str] = []
    used = estimate_tokens(LEFT_OUT) + 1
    shown = [t for t in turns if t.text.strip()]
    for turn in reversed(shown):
        cost = line_cost(cast, turn)
        if used + cost > tokens and kept:
            break
        kept.append(line_of(cast, turn)[: max(0, tokens - used) * 4] if used + cost > tokens else line_of(cast, turn))
        used += cost
    lines = list(reversed(kept))
    return "\n".join(([LEFT_OUT] if len(lines) < len(shown) else []) + lines)


def stretch_within(cast: Cast, turns: list[Turn], tokens: int, max_turns: int) -> list[Turn]:
    """The first turns of `turns` that fit in `tokens` (at most `max_turns`), ending before a player's
    line so no exchange is split; at least the first exchange, however long."""
    used, end = 0, 0
    for index, turn in enumerate(turns):
        if index >= max_turns or (end and used + line_cost(cast, turn) > tokens):
            break
        used += line_cost(cast, turn)
        end = index + 1
    cut = end
    while 0 < cut < len(turns) and turns[cut].role != "user":
        cut -= 1
    if cut == 0:  # the first exchange alone is longer than the stretch: take it whole
        cut = next((i for i in range(1, len(turns)) if turns[i].role == "user"), len(turns))
    return turns[:cut]
