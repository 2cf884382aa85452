"""Chat roles every chat template accepts: one system message, then user / assistant alternating.

Strict chat templates (Mistral, Gemma, Llama-2 style, as vLLM and llama.cpp apply them) reject a
conversation unless it is: at most one system message, first; then user and assistant strictly
alternating, starting with user.  `role_order_error` says what is wrong with a list of messages
(None when it is fine); `alternating` makes any list fit, by merging consecutive messages of one
role and opening with a user message when the first turn is the assistant's.  `render_messages`
shows messages as readable text; `without_notes` is a user message without the notes a reply
prompt adds after the player's line.  `system_in_first_user` serves chat templates with no system
role at all (Gemma's): the system text opens the first user message instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.llm.base import ChatMessage

OPENING_USER_LINE = "(The scene begins.)"
NOTES_OPENING = "\n\n[Story notes for "  # where a reply prompt's notes follow the player's line


def without_notes(content: str) -> str:
    """A user message as said in the story: without the notes (and instructions) after it."""
    return content.split(NOTES_OPENING, 1)[0]


def role_order_error(messages: Sequence[ChatMessage]) -> str | None:
    """Why a strict chat template would reject `messages`, or None if it accepts them."""
    if not messages:
        return "no messages"
    rest = list(messages)
    if rest[0].get("role") == "system":
        rest = rest[1:]
    if not rest:
        return "no user message after the system message"
    expected = "user"
    for index, message in enumerate(rest):
        role = message.get("role")
        if role == "system":
            return "a system message after the first message"
        if role != expected:
            return (
                f"conversation roles must alternate user/assistant/user/assistant/... "
                f"starting with user (message {index + (len(messages) - len(rest))} is {role!r})"
            )
        expected = "assistant" if role == "user" else "user"
    return None


def alternating(messages: Sequence[ChatMessage], *, opening: str = OPENING_USER_LINE) -> list[ChatMessage]:
    """`messages` made valid for strict templates: system messages merged into one (first),
    consecutive messages of one role merged (blank line between), and `opening` as the first
    user message when the dialogue would start with the assistant (or has no user turn)."""
    system = [m["content"] for m in messages if m["role"] == "system" and m["content"].strip()]
    merged: list[ChatMessage] = []
    for message in messages:
        if message["role"] == "system" or not message["content"].strip():
            continue
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + "\n\n" + message["content"]}
        else:
            merged.append({"role": message["role"], "content": message["content"]})
    if not merged or merged[0]["role"] != "user":
        merged.insert(0, {"role": "user", "content": opening})
    head: list[ChatMessage] = [{"role": "system", "content": "\n\n".join(system)}] if system else []
    return head + merged


def system_in_first_user(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """`messages` (valid for strict templates) without a system message: its text opens the first
    user message, a blank line before that message's own text."""
    if not messages or messages[0]["role"] != "system":
        return list(messages)
    system, rest = messages[0]["content"], list(messages[1:])
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def render_messages(messages: Sequence[ChatMessage]) -> str:
    """Messages as readable text, one `[role]` header each (`!context full`, golden prompt files)."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages) + "\n"
