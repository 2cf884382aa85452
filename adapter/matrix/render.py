"""Turning engine text into Matrix message content: markdown to sanitised HTML, notices, edits.

Markdown is rendered with markdown-it-py (raw HTML in the source is not passed
through) and the result is cleaned with nh3, so nothing a model or a player
writes can inject markup into a client.
"""

from __future__ import annotations

import html
from typing import Any

import nh3
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("strikethrough")
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "del", "s", "code", "pre", "p", "br", "blockquote", "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6", "hr"}


def markdown_to_html(text: str) -> str:
    """Render markdown to HTML that Matrix clients accept, sanitised."""
    rendered = _markdown.render(text).strip()
    return nh3.clean(rendered, tags=_ALLOWED_TAGS, attributes={"a": {"href"}}, link_rel=None)


def character_reply(speaker: str, text: str, *, truncated: bool = False) -> dict[str, Any]:
    """One character's turn as a message: the name shown first, markdown rendered."""
    suffix = " …(stopped)" if truncated else ""
    body_text = text if text else "…"
    return {
        "msgtype": "m.text",
        "body": f"{speaker}: {body_text}{suffix}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"<strong>{html.escape(speaker)}</strong>: {_inline(markdown_to_html(body_text))}{html.escape(suffix)}",
    }


def _inline(rendered: str) -> str:
    # A single paragraph reads better on the same line as the name.
    if rendered.startswith("<p>") and rendered.endswith("</p>") and rendered.count("<p>") == 1:
        return rendered[3:-4]
    return rendered


def notice(text: str) -> dict[str, Any]:
    """A bot notice (help, errors, narration): markdown rendered, sent as m.notice."""
    return {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html", "formatted_body": markdown_to_html(text)}


def edit_of(event_id: str, new_content: dict[str, Any]) -> dict[str, Any]:
    """An `m.replace` edit of `event_id` carrying the whole new content."""
    content = dict(new_content)
    content["body"] = "* " + new_content["body"]
    if "formatted_body" in new_content:
        content["formatted_body"] = "* " + new_content["formatted_body"]
    content["m.new_content"] = new_content
    content["m.relates_to"] = {"rel_type": "m.replace", "event_id": event_id}
    return content
