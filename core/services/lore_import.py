"""Reading lorebooks: a card's `character_book` (V2 / V3) and SillyTavern world info files.

Both become one `lore_imported` payload, each entry bound to who knows it:

- A card's book is known only by the card's own character.
- A world info file's entries are common knowledge, unless an entry's `characterFilter`
  names characters (or tags): then only those know it, or, with `isExclude`, everyone
  but those.  SillyTavern names characters by their card file; a name is matched to a
  registered character by id, name or the id its card would get, and kept as that id
  otherwise (so a character imported later under that name knows the entry).

Fields are read as SillyTavern reads them (its defaults where one is missing: world info
entries are selective and ordered 100; world info files scan recursively).  Anything that
is not a lorebook raises `LoreImportError` with what is wrong; nothing is written then.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from pydantic import ValidationError

from core.characters.cards import slugify
from core.errors import LoreImportError
from core.eventlog.events import LoreEntryRecord, LoreImported
from core.state.world import Character

MAX_LORE_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 5000
MAX_ORDER = 1_000_000_000
MAX_BOOK_NAME = 120


def _where(index: int, entry: Mapping[str, Any]) -> str:
    label = entry.get("comment") or entry.get("name") or entry.get("uid", entry.get("id", index))
    return f"entry {index + 1} ({str(label)[:40]})"


def _text(value: Any, what: str, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise LoreImportError(f"{what} should be text, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise LoreImportError(f"{what} holds a broken character at position {error.start}") from error
    return value


def _texts(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise LoreImportError(f"{what} should be a list of text, not {type(value).__name__}")
    return [text.strip() for text in (_text(item, what) for item in items) if text.strip()]


def _flag(value: Any, what: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    raise LoreImportError(f"{what} should be true or false, not {type(value).__name__}")


def _number(value: Any, what: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise LoreImportError(f"{what} should be a number, not {value[:20]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise LoreImportError(f"{what} should be a number, not {type(value).__name__}")
    return int(max(-MAX_ORDER, min(MAX_ORDER, value)))


def _scan_depth(value: Any, what: str) -> int | None:
    depth = _number(value, what, None)
    return None if depth is None or depth < 0 else min(depth, 1000)


def _positive(value: Any, what: str) -> int | None:
    number = _number(value, what, None)
    return number if number is not None and number > 0 else None


def _logic(value: Any, what: str) -> int:
    logic = _number(value, what, 0)
    return logic if logic in (1, 2, 3) else 0


def _entry(index: int, raw: Any, known_by: str, knowers: list[str], *, card: bool) -> LoreEntryRecord | None:
    """One entry, in a card book's shape (`keys`, `extensions`) or world info's (`key`, flat);
    None if it has no content."""
    if not isinstance(raw, Mapping):
        raise LoreImportError(f"entry {index + 1} is not an object")
    where = _where(index, raw)
    content = _text(raw.get("content"), f"the content of {where}")
    if not content.strip():
        return None
    extensions = raw.get("extensions") if card else raw
    ext: Mapping[str, Any] = extensions if isinstance(extensions, Mapping) else {}

    def field(card_name: str, world_name: str) -> Any:
        return raw.get(card_name) if card else raw.get(world_name)

    def extension(card_name: str, world_name: str) -> Any:
        return ext.get(card_name if card else world_name)

    selective = _flag(field("selective", "selective"), f"`selective` of {where}", default=not card)
    secondary = _texts(field("secondary_keys", "keysecondary"), f"the secondary keys of {where}")
    case = raw.get("case_sensitive") if card else None
    if case is None:
        case = extension("case_sensitive", "caseSensitive")
    enabled = (_flag(raw.get("enabled"), f"`enabled` of {where}", True) if card
               else not _flag(raw.get("disable"), f"`disable` of {where}"))
    record = {
        "uid": _text(field("id", "uid"), f"the id of {where}"),
        "title": _text(raw.get("comment") or raw.get("name"), f"the comment of {where}").strip(),
        "keys": _texts(field("keys", "key"), f"the keys of {where}"),
        "secondary_keys": secondary if selective else [],
        "selective_logic": _logic(ext.get("selectiveLogic"), f"`selectiveLogic` of {where}"),
        "content": content,
        "constant": _flag(raw.get("constant"), f"`constant` of {where}"),
        "enabled": enabled,
        "order": _number(field("insertion_order", "order"), f"the order of {where}", 100),
        "priority": _number(raw.get("priority"), f"the priority of {where}", 0),
        "case_sensitive": _flag(case, f"the case setting of {where}"),
        "match_whole_words": _flag(extension("match_whole_words", "matchWholeWords"), f"whole words of {where}"),
        "use_regex": _flag(raw.get("use_regex"), f"`use_regex` of {where}"),
        "exclude_recursion": _flag(extension("exclude_recursion", "excludeRecursion"), f"recursion of {where}"),
        "prevent_recursion": _flag(extension("prevent_recursion", "preventRecursion"), f"recursion of {where}"),
        "delay_until_recursion": _flag(extension("delay_until_recursion", "delayUntilRecursion"), f"recursion of {where}"),
        "ignore_budget": _flag(extension("ignore_budget", "ignoreBudget"), f"the budget setting of {where}"),
        "scan_depth": _scan_depth(extension("scan_depth", "scanDepth"), f"the scan depth of {where}"),
        "known_by": known_by,
        "knowers": knowers,
    }
    try:
        return LoreEntryRecord.model_validate(record)
    except ValidationError as error:
        raise LoreImportError(f"{where} is not a lorebook entry: {error.errors()[0]['msg']}") from error


def _ordered(entries: Any) -> list[Any]:
    """A book's entries: a list as it is, or world info's object keyed by uid in JavaScript's key order."""
    if isinstance(entries, list):
        return entries
    if isinstance(entries, Mapping):
        numeric = sorted((k for k in entries if isinstance(k, str) and k.isdigit()), key=int)
        return [entries[k] for k in numeric] + [v for k, v in entries.items() if k not in set(numeric)]
    raise LoreImportError("it has no `entries`: it is not SillyTavern world info")


def _resolve(names: list[str], characters: Sequence[Character]) -> list[str]:
    ids = []
    for name in names:
        wanted = name.strip().casefold()
        match = next(
            (c for c in characters
             if wanted in (c.character_id.casefold(), c.name.casefold()) or slugify(name) in (c.character_id, slugify(c.name))),
            None,
        )
        ids.append(match.character_id if match is not None else slugify(name))
    return list(dict.fromkeys(ids))


def _knowledge(raw: Any, where: str, characters: Sequence[Character]) -> tuple[str, list[str]]:
    """(known_by, knowers) from a world info entry's `characterFilter`."""
    found = raw.get("characterFilter") if isinstance(raw, Mapping) else None
    if not isinstance(found, Mapping):
        return "everyone", []
    names = _texts(found.get("names"), f"the character filter of {where}")
    tags = {t.casefold() for t in _texts(found.get("tags"), f"the tag filter of {where}")}
    if not names and not tags:
        return "everyone", []
    named = set(_resolve(names, characters)) if names else None
    tagged = {c.character_id for c in characters if tags & {t.casefold() for t in c.tags}} if tags else None
    if _flag(found.get("isExclude"), f"`isExclude` of {where}"):
        return "except", sorted((named or set()) | (tagged or set()))
    if named is not None and tagged is not None:
        return "only", sorted(named & tagged)
    return "only", sorted(named or tagged or set())


def _parse_json(data: bytes) -> Any:
    if len(data) > MAX_LORE_BYTES:
        raise LoreImportError(f"the file is larger than {MAX_LORE_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise LoreImportError(f"the file is not UTF-8 text (byte {error.start})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise LoreImportError(f"the file is not JSON: {error}") from error
    except RecursionError as error:
        raise LoreImportError("the file's JSON is nested too deeply") from error


def _book_name(filename: str, found: Mapping[str, Any]) -> str:
    stem = PurePath(filename.replace("\\", "/")).name
    if stem.lower().endswith(".json"):
        stem = stem[:-5]
    name = " ".join(stem.split()) or " ".join(str(found.get("name") or "").split()) or "Lore"
    return _text(name, "the file name")[:MAX_BOOK_NAME]


def world_info_book(
    data: bytes, filename: str, chat_id: str, characters: Sequence[Character]
) -> tuple[LoreImported, int]:
    """A world info file as the payload that adds it to `chat_id`, and how many entries were
    left out for having no content.  `characters`: those its filters may name."""
    found = _parse_json(data)
    if not isinstance(found, Mapping):
        raise LoreImportError(f"the file holds a JSON {type(found).__name__}, not SillyTavern world info")
    if isinstance(found.get("data"), Mapping) and ("spec" in found or "character_book" in found["data"]):
        raise LoreImportError("that is a character card, not world info: import the character, and its book comes with it")
    raw_entries = _ordered(found.get("entries"))
    if not raw_entries:
        raise LoreImportError("it has no entries")
    if len(raw_entries) > MAX_ENTRIES:
        raise LoreImportError(f"it has {len(raw_entries)} entries; a book may hold at most {MAX_ENTRIES}")
    entries = []
    for index, raw in enumerate(raw_entries):
        known_by, knowers = _knowledge(raw, f"entry {index + 1}", characters)
        card_shaped = isinstance(raw, Mapping) and "keys" in raw and "key" not in raw
        entry = _entry(index, raw, known_by, knowers, card=card_shaped)
        if entry is not None:
            entries.append(entry)
    if not entries:
        raise LoreImportError("none of its entries has any content")
    return LoreImported(
        chat_id=chat_id, book=_book_name(filename, found), origin="world_info",
        scan_depth=_scan_depth(found.get("scan_depth"), "the book's scan depth"),
        token_budget=_positive(found.get("token_budget"), "the book's token budget"),
        recursive=_flag(found.get("recursive_scanning"), "the book's `recursive_scanning`", True),
        entries=entries,
    ), len(raw_entries) - len(entries)


def card_book(character: Character, chat_id: str) -> tuple[LoreImported, int] | None:
    """The book of `character`'s card, known only by it (None: the card has no book with content)."""
    card = character.raw_card or {}
    section = card.get("data") if isinstance(card.get("data"), Mapping) else card
    book = section.get("character_book") if isinstance(section, Mapping) else None
    if not isinstance(book, Mapping) or not isinstance(book.get("entries"), list) or not book["entries"]:
        return None
    raw_entries = book["entries"][:MAX_ENTRIES]
    read = (_entry(i, raw, "only", [character.character_id], card=True) for i, raw in enumerate(raw_entries))
    entries = [entry for entry in read if entry is not None]
    if not entries:
        return None
    title = " ".join(str(book.get("name") or "").split())[:MAX_BOOK_NAME] or "Lorebook"
    return LoreImported(
        chat_id=chat_id, book=_text(f"{title} ({character.name}'s card)", "the book's name")[:200], origin="card",
        character_id=character.character_id,
        scan_depth=_scan_depth(book.get("scan_depth"), "the book's scan depth"),
        token_budget=_positive(book.get("token_budget"), "the book's token budget"),
        recursive=_flag(book.get("recursive_scanning"), "the book's `recursive_scanning`", False),
        entries=entries,
    ), len(raw_entries) - len(entries)
