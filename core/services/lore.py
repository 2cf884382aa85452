"""Lorebook activation: which entries a prompt gets, the way SillyTavern's world info decides.

`activate(entries, scan_texts, ...)` is pure.  The newest `scan_depth` messages of
`scan_texts` (oldest first, newest last) are scanned for each entry's keys:

- A key is plain text, matched case-insensitively unless the entry is `case_sensitive`
  (with `match_whole_words`, a one-word key must stand alone).  A key written
  `/pattern/flags` is a regular expression with its own flags (i, m, s; the case setting
  does not apply to it); with `use_regex`, every key is a pattern (case as above).  A
  pattern that does not compile is matched as plain text, as SillyTavern does.
- Secondary keys count only once a primary key matched: AND ANY (one of them is there),
  NOT ALL (one is missing), NOT ANY (none is there), AND ALL (all are there).
- `constant` entries are always on; disabled ones never.  An entry with its own
  `scan_depth` scans that many messages instead.
- With `recursive`, the contents of the entries just activated are scanned in a next pass
  (at most `MAX_RECURSION_STEPS` passes): `exclude_recursion` entries are not activated by
  such a pass, `prevent_recursion` entries' contents are not scanned, and
  `delay_until_recursion` entries are activated only by a pass after the first.
- The token budget (estimated as the prompt estimates) is spent in rank order: higher
  `priority` first, then higher `order`, then the order given.  The first entry that does
  not fit ends the scan (no recursion after it); `ignore_budget` entries cost nothing.

The result is in insertion order: lower `order` first, as SillyTavern writes its world info.
Probability rolls, inclusion groups, timed effects (sticky, cooldown, delay) and insertion
positions are not modelled: the prompt places all activated lore in one place.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence

import regex

from core.services.tokens import estimate_tokens
from core.state.lore import LoreEntry

log = logging.getLogger(__name__)

AND_ANY, NOT_ALL, NOT_ANY, AND_ALL = 0, 1, 2, 3
MAX_RECURSION_STEPS = 8
DEFAULT_SCAN_DEPTH = 2  # SillyTavern's default: the last two messages
MAX_SCAN_DEPTH = 1000
_SLASHED = re.compile(r"^/([\w\W]+?)/([gimsuy]*)$")
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL}
REGEX_TIMEOUT_S = 0.05  # per search of one key
_JOINER = "\n\x01"  # between scanned texts: a non-word mark, so no plain key spans two messages


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str, flags: int) -> regex.Pattern[str] | None:
    """A key's pattern, compiled by the `regex` module (it has a search timeout: keys come from
    uploaded files, and one catastrophic pattern must not freeze the bot for everyone)."""
    try:
        return regex.compile(pattern, flags | regex.VERSION0)
    except (regex.error, RecursionError, OverflowError, ValueError):
        return None


_too_slow: set[str] = set()  # patterns that ran out of time once: never searched again


def _search(pattern: regex.Pattern[str], haystack: str) -> bool:
    if pattern.pattern in _too_slow:
        return False
    try:
        return pattern.search(haystack, timeout=REGEX_TIMEOUT_S) is not None
    except TimeoutError:
        _too_slow.add(pattern.pattern)
        log.warning("a lorebook regex key took too long; it will not match again: %r", pattern.pattern[:80])
        return False


def slashed_regex(key: str) -> regex.Pattern[str] | None:
    """The regular expression a key written `/pattern/flags` stands for (None: not one, or broken)."""
    found = _SLASHED.match(key)
    if found is None:
        return None
    pattern, flag_letters = found.groups()
    if re.search(r"(^|[^\\])/", pattern):
        return None  # an unescaped slash inside: SillyTavern reads the key as plain text
    flags = 0
    for letter in flag_letters:
        flags |= _FLAGS.get(letter, 0)
    return _compiled(pattern.replace("\\/", "/"), flags)


def key_matches(haystack: str, key: str, entry: LoreEntry) -> bool:
    """Whether `key` (one of `entry`'s keys) is found in `haystack`."""
    key = key.strip()
    if not key:
        return False
    pattern = slashed_regex(key)
    if pattern is None and entry.use_regex:
        pattern = _compiled(key, 0 if entry.case_sensitive else regex.IGNORECASE)
    if pattern is not None:
        return _search(pattern, haystack)
    if not entry.case_sensitive:
        haystack, key = haystack.lower(), key.lower()
    if entry.match_whole_words and len(key.split()) == 1:
        whole = _compiled(rf"(?:^|\W)({re.escape(key)})(?:$|\W)", 0)
        return whole is not None and _search(whole, haystack)
    return key in haystack


def _secondary_satisfied(haystack: str, entry: LoreEntry) -> bool:
    if not entry.secondary_keys:
        return True
    found = [key_matches(haystack, key, entry) for key in entry.secondary_keys]
    if entry.selective_logic == NOT_ALL:
        return not all(found)
    if entry.selective_logic == NOT_ANY:
        return not any(found)
    if entry.selective_logic == AND_ALL:
        return all(found)
    return any(found)


def triggered(entry: LoreEntry, haystack: str) -> bool:
    """Whether a non-constant entry's keys (primary, then secondary) match `haystack`."""
    if not any(key_matches(haystack, key, entry) for key in entry.keys):
        return False
    return _secondary_satisfied(haystack, entry)


def _haystack(scan_texts: Sequence[str], depth: int, recursion: Sequence[str]) -> str:
    depth = min(max(depth, 0), MAX_SCAN_DEPTH)
    recent = [text.strip() for text in scan_texts[max(len(scan_texts) - depth, 0):]] if depth else []
    return "\x01" + _JOINER.join([*recent, *recursion])


def _rank(indexed: tuple[int, LoreEntry]) -> tuple[int, int, int]:
    index, entry = indexed
    return -entry.priority, -entry.order, index


def activate(
    entries: Sequence[LoreEntry],
    scan_texts: Sequence[str],
    *,
    scan_depth: int = DEFAULT_SCAN_DEPTH,
    token_budget: int,
    recursive: bool,
) -> list[LoreEntry]:
    """The entries the newest `scan_depth` of `scan_texts` (newest last) call up, within
    `token_budget` tokens, in insertion order (see the module docstring)."""
    ranked = sorted(((i, e) for i, e in enumerate(entries) if e.enabled and e.content.strip()), key=_rank)
    chosen: dict[int, LoreEntry] = {}
    recursion: list[str] = []
    spent, passes, overflowed = 0, 0, False
    while True:
        later_pass = passes > 0
        haystacks: dict[int, str] = {}
        found = []
        for index, entry in ranked:
            if index in chosen or (entry.delay_until_recursion and not later_pass):
                continue
            if later_pass and recursive and entry.exclude_recursion:
                continue
            if not entry.constant:
                depth = scan_depth if entry.scan_depth is None else entry.scan_depth
                haystack = haystacks.get(depth)
                if haystack is None:
                    haystack = haystacks[depth] = _haystack(scan_texts, depth, recursion)
                if not triggered(entry, haystack):
                    continue
            found.append((index, entry))
        new = []
        for index, entry in found:
            cost = 0 if entry.ignore_budget else estimate_tokens(entry.content)
            if overflowed and cost:
                continue
            if spent + cost > token_budget:
                overflowed = True
                continue
            spent += cost
            chosen[index] = entry
            new.append(entry)
        passes += 1
        feed = [entry.content for entry in new if not entry.prevent_recursion] if recursive else []
        delayed_waiting = any(e.delay_until_recursion and i not in chosen for i, e in ranked)
        if overflowed or passes > MAX_RECURSION_STEPS or not (feed or (passes == 1 and delayed_waiting)):
            break
        recursion.extend(feed)
    return [entry for _, entry in sorted(chosen.items(), key=lambda item: (item[1].order, item[0]))]
