"""The token estimate used for prompt budgets (no tokenizer: nothing is downloaded).

Estimate: one token per 4 characters of text, rounded up, plus `MESSAGE_OVERHEAD`
tokens per chat message for the role and separators.  English prose with BPE
tokenizers (GPT, Llama, Mistral) averages 3.5-4.5 characters per token, so the
estimate is within about 15% for prose; the prompt budget keeps a margin for that.
"""

from __future__ import annotations

from collections.abc import Iterable

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
