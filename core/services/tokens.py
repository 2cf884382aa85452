"""The token estimate used for prompt budgets (no tokenizer: nothing is downloaded).

Estimate: one token per 4 characters of text, rounded up, plus `MESSAGE_OVERHEAD`
tokens per chat message for the role and separators.  English prose with BPE
tokenizers (GPT, Llama, Mistral) averages 3.5-4.5 characters per token, so the
estimate is within about 15% for prose; the prompt budget keeps a margin for that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.llm.base import ChatMessage

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
DEFAULT_CONTEXT_TOKENS = 6000  # the prompt budget (`llm.context_tokens`) when none is configured


def estimate_tokens(text: str) -> int:
    """Estimated tokens of `text`: ceil(len / CHARS_PER_TOKEN)."""
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_message_tokens(message: ChatMessage) -> int:
    return estimate_tokens(message["content"]) + MESSAGE_OVERHEAD


def estimate_prompt_tokens(messages: Iterable[ChatMessage]) -> int:
    return sum(estimate_message_tokens(m) for m in messages)


def last_lines_within(text: str, tokens: int, note: str = "[Earlier lines are left out.]") -> str:
    """The last whole lines of `text` that fit in `tokens` (after `note` when some are left out);
    at least the end of the last line."""
    if estimate_tokens(text) <= tokens:
        return text
    kept: list[str] = []
    used = estimate_tokens(note) + 1
    for line in reversed(text.split("\n")):
        cost = estimate_tokens(line) + 1
        if used + cost > tokens:
            if not kept:
                kept.append(line[-max(0, tokens - used) * CHARS_PER_TOKEN:] if tokens > used else "")
            break
        kept.append(line)
        used += cost
    return "\n".join([note, *reversed(kept)])


def first_within(text: str, tokens: int) -> str:
    """`text` cut to `tokens` (at a line or a word when one is near)."""
    if estimate_tokens(text) <= tokens:
        return text
    cut = text[: max(0, tokens) * CHARS_PER_TOKEN]
    for mark in ("\n", " "):
        at = cut.rfind(mark)
        if at > len(cut) * 3 // 4:
            return cut[:at] + " …"
    return cut + "…"


def take_within(items: Sequence[str], budget: int) -> list[str]:
    """As many of `items` (most important first) as fit in `budget` tokens, whole."""
    kept, used = [], 0
    for item in items:
        cost = estimate_tokens(item) + 1
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def each_within(items: Sequence[str], budget: int) -> list[str]:
    """Those of `items` (most important first) that fit in `budget` tokens, whole: one that does
    not fit is passed over for the smaller ones after it."""
    kept, used = [], 0
    for item in items:
        cost = estimate_tokens(item) + 1
        if used + cost <= budget:
            kept.append(item)
            used += cost
    return kept


def ends_within(text: str, tokens: int, mark: str = " […] ") -> str:
    """`text` in at most `tokens`: whole if it fits, else its first third and its last two thirds
    of the room with `mark` between (a long line's end, where its question is, matters most)."""
    if estimate_tokens(text) <= tokens:
        return text
    room = max(0, tokens * CHARS_PER_TOKEN - len(mark))
    head = room // 3
    return text[:head].rstrip() + mark + text[len(text) - (room - head):].lstrip()
