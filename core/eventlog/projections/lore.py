"""Projector for lorebooks: a chat's books, their entries, and who knows each entry.

A book is named once per chat: importing a book under a name the chat already has
replaces that book (its entries and knowers go with it), so an edited world info file
imported again updates the story's lore instead of doubling it.  The book's id is the
event's seq; an entry is its book id and its place in the book.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from core.eventlog.events import LoreEntryRecord, LoreImported
from core.eventlog.projections.base import fetch_one, projects
from core.storage import Connection


async def _drop_book(conn: Connection, chat_id: str, name: str) -> None:
    row = await fetch_one(conn, "SELECT book_id FROM lore_books WHERE chat_id = ? AND name = ?", (chat_id, name))
    if row is None:
        return
    for table in ("lore_knowers", "lore_entries", "lore_books"):
        await conn.execute(f"DELETE FROM {table} WHERE book_id = ?", (row["book_id"],))


async def _insert_many(conn: Connection, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
    if rows:
        await conn.execute_many(sql, rows)


def _entry_row(book_id: int, position: int, chat_id: str, e: LoreEntryRecord) -> tuple[object, ...]:
    return (
        book_id, position, chat_id, e.uid, e.title,
        json.dumps(e.keys, ensure_ascii=False), json.dumps(e.secondary_keys, ensure_ascii=False),
        e.selective_logic, e.content, e.constant, e.enabled, e.order, e.priority, e.case_sensitive,
        e.match_whole_words, e.use_regex, e.exclude_recursion, e.prevent_recursion,
        e.delay_until_recursion, e.ignore_budget, e.scan_depth, e.known_by,
    )


@projects(LoreImported)
async def _lore_imported(conn: Connection, seq: int, p: LoreImported) -> int:
    await _drop_book(conn, p.chat_id, p.book)
    await conn.execute(
        """INSERT INTO lore_books (book_id, chat_id, name, origin, character_id, scan_depth, token_budget, recursive)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (seq, p.chat_id, p.book, p.origin, p.character_id, p.scan_depth, p.token_budget, p.recursive),
    )
    await _insert_many(
        conn,
        """INSERT INTO lore_entries (
               book_id, position, chat_id, uid, title, keys, secondary_keys, selective_logic, content,
               constant, enabled, insertion_order, priority, case_sensitive, match_whole_words, use_regex,
               exclude_recursion, prevent_recursion, delay_until_recursion, ignore_budget, scan_depth, known_by)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [_entry_row(seq, position, p.chat_id, entry) for position, entry in enumerate(p.entries)],
    )
    knowers = [
        (seq, position, knower)
        for position, entry in enumerate(p.entries) if entry.known_by != "everyone"
        for knower in entry.knowers
    ]
    await _insert_many(conn, "INSERT INTO lore_knowers (book_id, position, character_id) VALUES (?, ?, ?)", knowers)
    return seq
