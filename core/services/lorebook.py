"""A story's lorebook: importing books into a chat, listing them, and the lore of one prompt.

- `import_card_books`: when characters join a story, their cards' books come with them,
  each known only by its own character (once per story: a character joining again keeps
  the book it brought).
- `import_world_info`: a SillyTavern world info file added to a story (common knowledge
  unless an entry's character filter says who knows it); a file imported again under the
  same name replaces the book it gave before.
- `lore_infos`: every entry of the story with who knows it, for the player.
- `lore_for_prompt`: the contents the given character's next prompt gets.  Only entries
  that character knows are read (in SQL), before activation, so an entry it does not know
  can neither appear nor call up other entries through recursion.

A book's own settings hold for its entries: its scan depth for entries that set none, and,
for a book that does not scan recursively (a card book, unless it says so), entries that
neither call up others nor are called up by them.  The budget is the largest a book asks for
(`DEFAULT_LORE_TOKENS` if none does, at most `MAX_LORE_TOKENS`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.errors import LoreImportError
from core.eventlog import Readable, Writable, writing
from core.eventlog.events import LoreImported
from core.services.lore import DEFAULT_SCAN_DEPTH, activate
from core.services.lore_import import card_book, world_info_book
from core.services.macros import MacroValues, expand
from core.state import lore as lore_state
from core.state import world
from core.state.lore import KnownBy, LoreBook, LoreEntry
from core.state.world import Character

log = logging.getLogger(__name__)

DEFAULT_LORE_TOKENS = 600
MAX_LORE_TOKENS = 1500


@dataclass(frozen=True)
class LoreImportResult:
    """What one imported book added to a story."""

    book: str
    entries: int
    common: int  # entries everyone knows
    private: int  # entries only some characters know
    skipped: int  # entries left out: they had no content
    replaced: bool  # the story had a book of that name, which this one replaces


@dataclass(frozen=True)
class LoreEntryInfo:
    """One lorebook entry of a story, as the player sees it listed."""

    book: str
    title: str  # the entry's comment, else its first key
    keys: tuple[str, ...]
    content: str
    constant: bool
    enabled: bool
    known_by: KnownBy  # "everyone", "only" the knowers, everyone "except" them
    knowers: tuple[str, ...]  # character names (ids of characters not registered)


def _result(book: LoreImported, skipped: int, replaced: bool) -> LoreImportResult:
    common = sum(1 for e in book.entries if e.known_by == "everyone")
    return LoreImportResult(book.book, len(book.entries), common, len(book.entries) - common, skipped, replaced)


async def import_card_books(tx: Writable, chat_id: str, characters: Iterable[Character]) -> list[LoreImportResult]:
    """Add to the chat the book of each character's card that it does not have yet.  A card
    whose book cannot be read is skipped (logged): a story never fails to start over lore."""
    results = []
    async with writing(tx) as joined:
        books = await lore_state.lore_books(joined, chat_id)
        for character in characters:
            if any(b.origin == "card" and b.character_id == character.character_id for b in books):
                continue
            try:
                found = card_book(character, chat_id)
            except LoreImportError as error:
                log.warning("the lorebook of %s's card was not imported: %s", character.character_id, error)
                continue
            if found is None:
                continue
            book, skipped = found
            replaced = await lore_state.book_named(joined, chat_id, book.book) is not None
            await lore_state.record_lore(joined, book)
            results.append(_result(book, skipped, replaced))
    return results


async def import_world_info(target: Writable, chat_id: str, data: bytes, filename: str) -> LoreImportResult:
    """Add a SillyTavern world info file (its bytes, and the name it was uploaded under) to the
    chat.  LoreImportError for anything that is not one (nothing written); ChatNotFoundError."""
    async with writing(target) as tx:
        await world.require_chat(tx, chat_id)
        book, skipped = world_info_book(data, filename, chat_id, await world.list_characters(tx))
        replaced = await lore_state.book_named(tx, chat_id, book.book) is not None
        await lore_state.record_lore(tx, book)
    return _result(book, skipped, replaced)


async def lore_infos(source: Readable, chat_id: str) -> list[LoreEntryInfo]:
    """Every entry of the chat's books, book by book, with who knows it."""
    books = {b.book_id: b for b in await lore_state.lore_books(source, chat_id)}
    names = {c.character_id: c.name for c in await world.list_characters(source)}
    return [
        LoreEntryInfo(
            books[e.book_id].name, e.title or (e.keys[0] if e.keys else e.content[:40]), e.keys, e.content,
            e.constant, e.enabled, e.known_by, tuple(names.get(k, k) for k in e.knowers),
        )
        for e in await lore_state.lore_entries(source, chat_id)
    ]


def _as_in_book(entry: LoreEntry, book: LoreBook, macros: MacroValues | None) -> LoreEntry:
    changes: dict[str, object] = {}
    if entry.scan_depth is None and book.scan_depth is not None:
        changes["scan_depth"] = book.scan_depth
    if not book.recursive:
        changes.update(exclude_recursion=True, prevent_recursion=True)
    if macros is not None:
        changes.update(
            content=expand(entry.content, macros),
            keys=tuple(expand(k, macros) for k in entry.keys),
            secondary_keys=tuple(expand(k, macros) for k in entry.secondary_keys),
        )
    return dataclasses.replace(entry, **changes) if changes else entry  # type: ignore[arg-type]


def lore_budget(books: Iterable[LoreBook]) -> int:
    asked = [b.token_budget for b in books if b.token_budget]
    return min(max(asked, default=DEFAULT_LORE_TOKENS), MAX_LORE_TOKENS)


async def lore_for_prompt(
    source: Readable,
    chat_id: str,
    character_id: str,
    scan_texts: Sequence[str],
    *,
    token_budget: int | None = None,
    macros: MacroValues | None = None,
) -> list[str]:
    """The lore `character_id` brings to mind for a prompt: the contents of the entries it knows
    that `scan_texts` (the recent dialogue, oldest first, newest last) call up, within the
    budget, in insertion order.  `macros`: resolve `{{char}}` / `{{user}}` in keys and contents."""
    entries = await lore_state.known_entries(source, chat_id, character_id)
    if not entries:
        return []
    books = {b.book_id: b for b in await lore_state.lore_books(source, chat_id)}
    prepared = [_as_in_book(e, books[e.book_id], macros) for e in entries]
    budget = token_budget or lore_budget(books[i] for i in {e.book_id for e in entries})
    active = activate(prepared, scan_texts, scan_depth=DEFAULT_SCAN_DEPTH, token_budget=budget, recursive=True)
    return [entry.content for entry in active]
