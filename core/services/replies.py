"""How a character's reply is asked for and cleaned: length, stop sequences, a leading name.

- `ReplySettings`: `max_tokens` for a reply and whether to stop at the next speaker's name
  (`\\n<player>:` for each player, and the other characters present), plus any extra stop sequences.
- `stop_sequences`: those sequences for one reply (at most four, the OpenAI limit): the players'
  names first, since writing a player's next line is the worst failure, then the other
  characters', then the first names (`other_names`) while the limit allows.
- `cut_at_others`: the rest are enforced here, whatever the limit: a reply ends where it starts
  a line as anyone else present, full name or first (`\\nMira:`); `held_back` keeps a stream
  from showing a line start that may still become one.
- `strip_speaker_name`: models like to open with `Maren Ashdown:`; the reply shown and
  recorded never does.  `pending_prefix` tells a stream to hold its first words back while
  they may still turn out to be such a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.services.card_text import nickname
from core.services.dialogue import Cast
from core.state import world

MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True)
class ReplySettings:
    max_tokens: int = 400
    stop_at_names: bool = True
    extra_stop: tuple[str, ...] = field(default_factory=tuple)


_NOT_NAMES = frozenset("the and of von van der den del de la le".split())


def name_forms(name: str) -> list[str]:
    """How a speaker's line may be labelled: the whole name, then each word of it a first name or
    title could be ("Captain Odile Marchetti" -> "Odile", "Captain", "Marchetti"; not an epithet
    after "of")."""
    words = [w for w in re.findall(r"[\w'-]+", re.split(r"\s+of\s+", name, maxsplit=1)[0])
             if len(w) > 2 and w.lower() not in _NOT_NAMES]
    return list(dict.fromkeys([name, *words]))


def other_names(cast: Cast, speaker: world.Character) -> list[str]:
    """Every label another speaker present may go by, for `speaker`'s reply: the players' names,
    then the other characters' (and their nicknames), whole names before their words."""
    players = [p.name for p in cast.present_players]
    characters = [c for c in cast.characters if c.character_id != speaker.character_id]
    whole = [*players, *(c.name for c in characters), *(nickname(c) for c in characters)]
    parts = [form for name in whole for form in name_forms(name)[1:]]
    return [n for n in dict.fromkeys([*whole, *parts]) if n.strip()]


def stop_sequences(cast: Cast, speaker: world.Character, settings: ReplySettings) -> list[str]:
    stops = [f"\n{name}:" for name in other_names(cast, speaker)] if settings.stop_at_names else []
    names = stops[:MAX_STOP_SEQUENCES - len(settings.extra_stop)] if settings.extra_stop else stops
    return list(dict.fromkeys([*names, *settings.extra_stop]))[:MAX_STOP_SEQUENCES]


def _label(names: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True) if n)
    return re.compile(rf"\n[ \t]*(?:\*\*)?(?:{alternatives})(?:\*\*)?[ \t]*:")


def cut_at_others(text: str, names: list[str]) -> int | None:
    """Where `text` starts a line as one of `names` (`\\nMira:`), if it does."""
    match = _label(names).search(text) if names else None
    return None if match is None else match.start()


def held_back(text: str, names: list[str]) -> str:
    """`text` to show while streaming: without a last line that may still become `Name:` of one of `names`."""
    start = text.rfind("\n")
    if start < 0 or not names:
        return text
    tail = text[start + 1:].lstrip(" \t*")
    if any(f"{n}:".startswith(tail) or (tail.startswith(n) and not tail[len(n):].strip(" \t*")) for n in names):
        return text[:start]
    return text


def _name_prefix(names: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True) if n)
    return re.compile(rf"^\s*(?:\*\*)?(?:{alternatives})(?:\*\*)?\s*:(?:\*\*)?[ \t]*\n?", re.IGNORECASE)


def strip_speaker_name(text: str, names: list[str]) -> str:
    """`text` without a leading `Name:` (any of `names`, case-insensitive, bold or not)."""
    return _name_prefix(names).sub("", text, count=1) if names else text


def pending_prefix(text: str, names: list[str]) -> bool:
    """Whether `text` (the start of a stream) may still become a leading `Name:`."""
    head = text.lstrip().lstrip("*").lower()
    if not head:
        return True
    for name in (n.lower() for n in names if n):
        if f"{name}:".startswith(head):
            return True
        if head.startswith(name) and not head[len(name):].strip(" *"):
            return True
    return False


_RUNS_ON = (".", ",", ";", ":", "!", "?", "…", ")", "]", "'", '"', "”", "’", "-", "—")


def join_continuation(base: str, more: str) -> str:
    """A reply that went on: `more` follows `base` as the model wrote it, with a space between
    two words (a continuation that starts with a mark or a space, or a base that ends with
    one, runs on as it is)."""
    if not more or not base or base[-1].isspace() or more[0].isspace() or more.startswith(_RUNS_ON):
        return base + more
    return f"{base} {more}"
