"""`!lore`: the story's lorebook, and `!lore import` to add SillyTavern world info to it.

`!lore` lists every entry, book by book, one line each: its title, its first keys, and who
knows it (everyone, only the characters it names, or everyone but them).  `!lore import`,
sent as a reply to an uploaded world info file (.json; decrypted in encrypted rooms), adds
it to the story through `Engine.import_lore`.  Every refusal says why: no reply, a message
without a file, a file too large, not JSON, not world info.
"""

from __future__ import annotations

import re

from adapter.matrix.handlers.commands import CommandError, CommandResult, Invocation, command_list
from adapter.matrix.media import MediaError, fetch_uploaded_file
from adapter.matrix.room_types import STORY_ROOMS
from core.engine import LoreEntryInfo
from core.errors import LoreImportError

MAX_LORE_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_LISTED = 50
MAX_KEYS_SHOWN = 3
_MARKDOWN = re.compile(r"([\\`*\[\]<>~])")  # underscores inside words stay as they are

COMMANDS, command = command_list()


def _chat_id(inv: Invocation) -> str:
    assert inv.meta.chat_id is not None  # a story room's command
    return inv.meta.chat_id


def plain(text: str, limit: int = 60) -> str:
    """`text` on one line, at most `limit` characters, with Markdown's marks escaped."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return _MARKDOWN.sub(r"\\\1", text)


def known_by(entry: LoreEntryInfo) -> str:
    names = ", ".join(entry.knowers) or "no one in the story yet"
    if entry.known_by == "only":
        return f"known only to {plain(names, 120)}"
    if entry.known_by == "except":
        return f"known to everyone but {plain(names, 120)}"
    return "known to everyone"


def entry_line(entry: LoreEntryInfo) -> str:
    keys = [f"`{' '.join(k.replace('`', '').split())[:24]}`" for k in entry.keys[:MAX_KEYS_SHOWN]]
    more = f" +{len(entry.keys) - MAX_KEYS_SHOWN}" if len(entry.keys) > MAX_KEYS_SHOWN else ""
    when = "always in mind" if entry.constant else f"called up by {', '.join(keys)}{more}" if keys else "no keys"
    title = f"**{plain(entry.title)}**"
    if not entry.enabled:
        return f"- ~~{title}~~ (switched off)"
    return f"- {title}: {when}; {known_by(entry)}"


def lore_text(entries: list[LoreEntryInfo]) -> str:
    if not entries:
        return ("This story has no lore yet. Upload a SillyTavern world info file (.json) here and reply "
                "to it with `!lore import`; a character's card brings its own lorebook with it.")
    lines = [f"**Lore of this story:** {len(entries)} {'entry' if len(entries) == 1 else 'entries'}"]
    book = None
    for entry in entries[:MAX_LISTED]:
        if entry.book != book:
            book = entry.book
            lines += ["", f"*{plain(book, 120)}*"]
        lines.append(entry_line(entry))
    if len(entries) > MAX_LISTED:
        lines += ["", f"…and {len(entries) - MAX_LISTED} more."]
    return "\n".join(lines)


@command("lore", "!lore [import]", "the story's lore and who knows each entry; reply `!lore import` to an uploaded "
         "SillyTavern world info file (.json) to add it", STORY_ROOMS)
async def _lore(inv: Invocation) -> list[CommandResult]:
    action = inv.args.strip().lower()
    if action == "import":
        return await _import(inv)
    if action:
        raise CommandError(f"`{plain(inv.args, 40)}` is not a `!lore` option.")
    return inv.reply(lore_text(await inv.ctx.engine.lore(_chat_id(inv))))


async def _import(inv: Invocation) -> list[CommandResult]:
    if inv.reply_to is None:
        raise CommandError("Upload a SillyTavern world info file (.json) here, then reply to it with `!lore import`.")
    try:
        filename, data = await fetch_uploaded_file(
            inv.ctx.client, inv.meta.room_id, inv.reply_to, max_bytes=MAX_LORE_UPLOAD_BYTES,
            expected="a SillyTavern world info file, .json",
        )
        result = await inv.ctx.engine.import_lore(_chat_id(inv), data, filename)
    except MediaError as exc:
        raise CommandError(str(exc)) from exc
    except LoreImportError as exc:
        raise CommandError(f"That is not a world info file I can read: {exc}.") from exc
    entries = f"{result.entries} {'entry' if result.entries == 1 else 'entries'}"
    who = f"{result.common} known to everyone, {result.private} only to some" if result.private else "all known to everyone"
    replaced = " It replaces the book of the same name." if result.replaced else ""
    skipped = f" {result.skipped} empty entries were left out." if result.skipped else ""
    return inv.reply(f"Added **{plain(result.book, 120)}** to the story's lore: {entries} ({who}).{replaced}{skipped} "
                     "See them with `!lore`.")
