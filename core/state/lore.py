"""The lore read model: each chat's lorebooks, their entries, and who knows each entry.

An entry is known by everyone in the story, by "only" the characters listed as its
knowers, or by everyone "except" them.  `known_entries` reads what one character knows
with the knowledge test in the SQL itself (as memories are read by witness), so an entry
a character does not know never leaves the database for its prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from core.eventlog import Readable, Writable, append_and_apply, writing
from core.eventlog.events import LoreImported
from core.state.rows import dialect_of, fetch_all, fetch_one
from core.storage import Dialect
from core.storage.sql import json_list_agg

KnownBy = Literal["everyone", "only", "except"]


@dataclass(frozen=True)
class LoreBook:
    book_id: int
    chat_id: str
    name: str
    origin: Literal["card", "world_info"]
    character_id: str | None  # whose card the book came with
    scan_depth: int | None
    token_budget: int | None
    recursive: bool


@dataclass(frozen=True)
class LoreEntry:
    """One lorebook entry, as activation reads it (the defaults are SillyTavern's)."""

    content: str
    keys: tuple[str, ...] = ()
    secondary_keys: tuple[str, ...] = ()
    selective_logic: int = 0  # 0 AND ANY, 1 NOT ALL, 2 NOT ANY, 3 AND ALL
    constant: bool = False
    enabled: bool = True
    order: int = 100
    priority: int = 0
    case_sensitive: bool = False
    match_whole_words: bool = False
    use_regex: bool = False
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    delay_until_recursion: bool = False
    ignore_budget: bool = False
    scan_depth: int | None = None  # None: the scan depth activation is given
    title: str = ""
    uid: str = ""
    book_id: int = 0
    position: int = 0
    known_by: KnownBy = "everyone"
    knowers: tuple[str, ...] = ()


def _book(row: Any) -> LoreBook:
    return LoreBook(row["book_id"], row["chat_id"], row["name"], row["origin"], row["character_id"],
                    row["scan_depth"], row["token_budget"], bool(row["recursive"]))


def _entry(row: Any) -> LoreEntry:
    return LoreEntry(
        content=row["content"], keys=tuple(json.loads(row["keys"])),
        secondary_keys=tuple(json.loads(row["secondary_keys"])), selective_logic=row["selective_logic"],
        constant=bool(row["constant"]), enabled=bool(row["enabled"]), order=row["insertion_order"],
        priority=row["priority"], case_sensitive=bool(row["case_sensitive"]),
        match_whole_words=bool(row["match_whole_words"]), use_regex=bool(row["use_regex"]),
        exclude_recursion=bool(row["exclude_recursion"]), prevent_recursion=bool(row["prevent_recursion"]),
        delay_until_recursion=bool(row["delay_until_recursion"]), ignore_budget=bool(row["ignore_budget"]),
        scan_depth=row["scan_depth"], title=row["title"], uid=row["uid"], book_id=row["book_id"],
        position=row["position"], known_by=row["known_by"], knowers=tuple(json.loads(row["knowers"])),
    )


def _knowers_column(dialect: Dialect) -> str:
    return f"""(SELECT {json_list_agg(dialect, 'character_id')} FROM lore_knowers k
               WHERE k.book_id = e.book_id AND k.position = e.position) AS knowers"""


async def record_lore(target: Writable, book: LoreImported) -> LoreBook:
    """Add a book to its chat (replacing the chat's book of the same name)."""
    async with writing(target) as tx:
        event = await append_and_apply(tx, "lore_imported", book)
        row = await fetch_one(tx, "SELECT * FROM lore_books WHERE book_id = ?", (event.ref,))
    assert row is not None
    return _book(row)


async def lore_books(source: Readable, chat_id: str) -> list[LoreBook]:
    """The chat's books, in the order they were imported."""
    rows = await fetch_all(source, "SELECT * FROM lore_books WHERE chat_id = ? ORDER BY book_id", (chat_id,))
    return [_book(r) for r in rows]


async def book_named(source: Readable, chat_id: str, name: str) -> LoreBook | None:
    row = await fetch_one(source, "SELECT * FROM lore_books WHERE chat_id = ? AND name = ?", (chat_id, name))
    return None if row is None else _book(row)


async def lore_entries(source: Readable, chat_id: str) -> list[LoreEntry]:
    """Every entry of the chat's books (known to anyone or not), book by book, in book order."""
    rows = await fetch_all(
        source,
        f"SELECT e.*, {_knowers_column(dialect_of(source))} FROM lore_entries e WHERE e.chat_id = ? ORDER BY e.book_id, e.position",
        (chat_id,),
    )
    return [_entry(r) for r in rows]


async def known_entries(source: Readable, chat_id: str, character_id: str) -> list[LoreEntry]:
    """The entries `character_id` knows: common ones, ones naming it, ones excepting others."""
    rows = await fetch_all(
        source,
        f"""SELECT e.*, {_knowers_column(dialect_of(source))} FROM lore_entries e
            WHERE e.chat_id = :chat
              AND (e.known_by = 'everyone'
                   OR (e.known_by = 'only' AND EXISTS (
                       SELECT 1 FROM lore_knowers k
                       WHERE k.book_id = e.book_id AND k.position = e.position AND k.character_id = :who))
                   OR (e.known_by = 'except' AND NOT EXISTS (
                       SELECT 1 FROM lore_knowers k
                       WHERE k.book_id = e.book_id AND k.position = e.position AND k.character_id = :who)))
            ORDER BY e.book_id, e.position""",
        {"chat": chat_id, "who": character_id},
    )
    return [_entry(r) for r in rows]
