"""Turning engine text into Matrix message content: markdown to sanitised HTML, notices, edits.

Markdown is rendered with markdown-it-py (raw HTML in the source is not passed
through) and the result is cleaned with nh3, so nothing a model or a player
writes can inject markup into a client.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("strikethrough")
_ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "del", "s", "code", "pre", "p", "br", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
}


def markdown_to_html(text: str) -> str:
    """Render markdown to HTML that Matrix clients accept, sanitised."""
    rendered = _markdown.render(text).strip()
    return nh3.clean(rendered, tags=_ALLOWED_TAGS, attributes={"a": {"href"}}, link_rel=None)


# Synapse refuses events over 64 KiB (M_TOO_LARGE), signatures included. A reply's content is kept
# under MAX_CONTENT_BYTES so that its edit (the new content plus a short fallback) fits as well.
MAX_CONTENT_BYTES = 28_000
EDIT_FALLBACK_CHARS = 1_000
CUT_NOTE = "\n\n…(cut here: too long for one Matrix message)"


def content_bytes(content: dict[str, Any]) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())


PER_MESSAGE_PROFILE = "com.beeper.per_message_profile"  # MSC4144's unstable key, as clients read it today
_PROFILE_FIELD_BYTES = 255


@dataclass(frozen=True)
class SpeakerProfile:
    """Who a character's message is from: the face the bot wears in the room before it (its member
    event's name and avatar) and, for clients that show them, the message's per-message profile."""

    profile_id: str  # opaque and stable: the character id
    displayname: str
    avatar_url: str | None = None

    def content(self) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "id": _clip_utf8(self.profile_id, _PROFILE_FIELD_BYTES),
            "displayname": _clip_utf8(self.displayname, _PROFILE_FIELD_BYTES),
        }
        if self.avatar_url:
            profile["avatar_url"] = self.avatar_url
        return profile


def _clip_utf8(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def intentional_mentions(user_ids: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """`m.mentions` naming exactly `user_ids` (none: `{}`), so that no client highlights a line
    because it happens to contain a player's name."""
    return {"user_ids": list(user_ids)} if user_ids else {}


def character_reply(
    text: str, *, truncated: bool = False, profile: SpeakerProfile | None = None, mentions: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One character's turn as a message: markdown rendered, with intentional mentions (`mentions`:
    the players it names on purpose; none by default).

    The speaker is not written into the text: the bot wears the character's name and portrait as
    its member profile in the room when the line is sent (`adapter.matrix.speaking`), which every
    client shows as the line's sender, and `profile` travels as the per-message profile for the
    clients that render those. A reply too big for one Matrix event is shown as plain text, and if
    still too big, cut with a note (the engine keeps the whole text); the homeserver would refuse it
    otherwise.
    """
    suffix = " …(stopped)" if truncated else ""
    body_text = text if text else "…"
    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": f"{body_text}{suffix}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"{_inline(markdown_to_html(body_text))}{html.escape(suffix)}",
        "m.mentions": intentional_mentions(mentions),
    }
    if profile is not None:
        content[PER_MESSAGE_PROFILE] = profile.content()
    if content_bytes(content) <= MAX_CONTENT_BYTES:
        return content
    plain = {key: value for key, value in content.items() if key not in ("format", "formatted_body")}
    keep = len(body_text)
    while content_bytes(plain) > MAX_CONTENT_BYTES and keep > 0:
        keep = keep * 3 // 4
        plain["body"] = f"{body_text[:keep]}{CUT_NOTE}{suffix}"
    return plain


def _inline(rendered: str) -> str:
    # A single paragraph is sent without its <p>, as clients send one-line messages.
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        return rendered[3:-4]
    return rendered


def room_link(room_id: str, server_name: str, text: str) -> str:
    """A markdown link to a room or Space that Element shows as a pill (a matrix.to permalink with a `via`)."""
    return f"[{text}](https://matrix.to/#/{quote(room_id, safe='!:')}?via={quote(server_name)})"


def notice(text: str, mentions: tuple[str, ...] = ()) -> dict[str, Any]:
    """A bot notice (help, errors, narration): markdown rendered, sent as m.notice, mentioning
    exactly `mentions` (none by default: a notice that names a player does not highlight them)."""
    return {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html", "formatted_body": markdown_to_html(text),
            "m.mentions": intentional_mentions(mentions)}


def _collapsed(title: str, text: str) -> dict[str, Any]:
    return {
        "msgtype": "m.notice",
        "body": f"{title}\n\n{text}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"<details><summary>{html.escape(title)}</summary><pre><code>{html.escape(text)}</code></pre></details>",
    }


def _fitting_parts(text: str, title: str) -> list[str]:
    """`text` split (at a line end near the middle if it can) until each part fits one event."""
    if len(text) <= 1 or content_bytes(_collapsed(title + " (part 99 of 99)", text)) <= MAX_CONTENT_BYTES:
        return [text]
    middle = len(text) // 2
    cut = text.rfind("\n", 0, middle) + 1 or middle
    return _fitting_parts(text[:cut], title) + _fitting_parts(text[cut:], title)


def collapsed_blocks(summary: str, text: str) -> list[dict[str, Any]]:
    """Long plain text (a whole prompt) as notices holding a collapsed `<details>` block each,
    split into as many messages as the event size limit needs ("part 2 of 3")."""
    parts = _fitting_parts(text, summary)
    return [
        _collapsed(summary + (f" (part {index} of {len(parts)})" if len(parts) > 1 else ""), part)
        for index, part in enumerate(parts, 1)
    ]


def edit_of(event_id: str, new_content: dict[str, Any]) -> dict[str, Any]:
    """An `m.replace` edit of `event_id` carrying the whole new content. An edit mentions no one
    anew (`m.mentions` `{}`): whoever the message names was mentioned by the message itself."""
    content = dict(new_content)
    if "m.mentions" in new_content:
        content["m.mentions"] = {}
    body = new_content["body"]
    content["body"] = "* " + (body if len(body) <= EDIT_FALLBACK_CHARS else body[:EDIT_FALLBACK_CHARS] + "…")
    if "formatted_body" in new_content:
        if len(new_content["formatted_body"]) <= EDIT_FALLBACK_CHARS:
            content["formatted_body"] = "* " + new_content["formatted_body"]
        else:  # clients without edits get the short plain fallback; the event stays small
            content.pop("formatted_body")
            content.pop("format", None)
    content["m.new_content"] = new_content
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": event_id}
    return content
