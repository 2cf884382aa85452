"""How a character's reply is asked for and cleaned: length, stop sequences, a leading name.

- `ReplySettings`: `max_tokens` for a reply and whether to stop at the next speaker's name
  (`\\n<player>:` and the other characters present), plus any extra stop sequences.
- `stop_sequences`: those sequences for one reply (at most four, the OpenAI limit; the
  player's name first, since writing the player's next line is the worst failure).
- `strip_speaker_name`: models like to open with `Maren Ashdown:`; the reply shown and
  recorded never does.  `pending_prefix` tells a stream to hold its first words back while
  they may still turn out to be such a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.services.dialogue import Cast
from core.state import world

MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True)
class ReplySettings:
    max_tokens: int = 400
    stop_at_names: bool = True
    extra_stop: tuple[str, ...] = field(default_factory=tuple)


def stop_sequences(cast: Cast, speaker: world.Character, settings: ReplySettings) -> list[str]:
    names = [p.name for p in cast.present_players] + [c.name for c in cast.characters
                                                      if c.character_id != speaker.character_id]
    stops = [f"\n{name}:" for name in names] if settings.stop_at_names else []
    return list(dict.fromkeys([*stops, *settings.extra_stop]))[:MAX_STOP_SEQUENCES]


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
