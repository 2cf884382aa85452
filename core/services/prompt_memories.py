"""What a reply prompt holds of the story beyond its dialogue window, each part within its share.

- The story so far: the character's own account rolled up from its older scene summaries
  (`story_so_far`), cut at a sentence to the "story" share.
- Its latest scene summaries (those its story so far has not taken in), newest first while
  they fit the "summaries" share.
- Its account of the newest scene so far: its top parts of it (`rolling_summaries`), oldest
  first while they fit the "scene" share, until that scene has the character's summary.

No line three times: a summary is left out when the window still shows every line it covers,
and a key quote when the window shows the line it quotes (`without_what_the_window_shows`);
a part is there only for lines the window no longer shows.  Everything left out stays in reach:
recall finds summaries and parts by their words (`recall.recalled_memories`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.eventlog import Readable
from core.services import recall
from core.services.card_text import whole_sentences
from core.services.scenes import KEY_QUOTES_HEADER
from core.services.story_clock import when_phrase
from core.services.tokens import estimate_tokens
from core.state import summaries as summary_state
from core.state import world
from core.state.memory import Memory
from core.state.turns import Turn


@dataclass
class PastSections:
    """The story so far, scene summaries and the newest scene's parts, as prompt lines, with the
    memories each line shows (so recall leaves them out)."""

    story: list[tuple[Memory, str]] = field(default_factory=list)
    summaries: list[tuple[Memory, str]] = field(default_factory=list)
    scene: list[tuple[Memory, str]] = field(default_factory=list)

    def lines(self, name: str) -> list[str]:
        return [line for _, line in getattr(self, name)]

    def memory_ids(self) -> set[int]:
        return {m.memory_id for m, _ in (*self.story, *self.summaries, *self.scene)}

    def texts(self) -> set[str]:
        return {m.text for m, _ in (*self.story, *self.summaries, *self.scene)}


def _line(memory: Memory, now: datetime, text: str | None = None) -> str:
    return f"- ({when_phrase(memory.story_time, now)}) {memory.text if text is None else text}"


def _cost(line: str) -> int:
    return estimate_tokens(line) + 1


def _within(items: Sequence[tuple[Memory, str]], budget: int) -> list[tuple[Memory, str]]:
    kept, used = [], 0
    for memory, line in items:
        if used + _cost(line) > budget:
            break
        kept.append((memory, line))
        used += _cost(line)
    return kept


async def past_sections(
    source: Readable, chat_id: str, who: str, budgets: dict[str, int], now: datetime, *,
    summaries: int, recorded_before: int | None = None,
) -> PastSections:
    """`who`'s story so far, latest `summaries` scene summaries and newest scene's parts, each
    within its budget (recorded before event `recorded_before`, if given: a regenerate's view)."""
    story = await summary_state.latest_story(source, chat_id, who, recorded_before=recorded_before)
    past = PastSections()
    if story is not None and budgets["story"] > 0:
        text = whole_sentences(story.text, max(0, budgets["story"] - 12) * 4)
        past.story = [(story, _line(story, now, text))] if _cost(_line(story, now, text)) <= budgets["story"] else []
    folded = story.scene_id if story is not None else None
    latest = [m for m in await recall.pov_summaries(source, chat_id, who, summaries, recorded_before=recorded_before)
              if folded is None or m.scene_id is None or m.scene_id > folded]
    past.summaries = list(reversed(_within([(m, _line(m, now)) for m in reversed(latest)], budgets["summaries"])))
    scene = await world.latest_main_scene(source, chat_id)
    if scene is not None and not await summary_state.has_scene_summary(
            source, scene.scene_id, who, recorded_before=recorded_before):
        parts = await summary_state.scene_parts(source, scene.scene_id, who, recorded_before=recorded_before)
        past.scene = _within([(p, _line(p, now)) for p in parts], budgets["scene"])
    return past


def without_what_the_window_shows(past: PastSections, window: Sequence[Turn], now: datetime) -> PastSections:
    """`past` less what repeats the window: summaries and parts all of whose lines it still
    shows, and key quotes of lines it shows.  Summaries without a record of their turns stay."""
    first = window[0].turn_id if window else None
    said = [" ".join(t.text.split()) for t in window]

    def still_needed(memory: Memory) -> bool:
        return memory.covers_from_turn is None or first is None or memory.covers_from_turn < first

    def unquoted(memory: Memory) -> str:
        body, header, quotes = memory.text.partition(f"\n\n{KEY_QUOTES_HEADER}\n")
        if not header:
            return memory.text
        kept = [q for q in quotes.split("\n") if not any(line.startswith(_quoted(q)) for line in said)]
        return body + (f"\n\n{KEY_QUOTES_HEADER}\n" + "\n".join(kept) if kept else "")

    return PastSections(
        story=past.story,
        summaries=[(m, _line(m, now, unquoted(m))) for m, _ in past.summaries if still_needed(m)],
        scene=[(m, line) for m, line in past.scene if still_needed(m)],
    )


def _quoted(quote_line: str) -> str:
    """The quoted words of a key quote line (`- Name: "words"`)."""
    _, _, words = quote_line.partition(': "')
    return words[:-1] if words.endswith('"') else words or quote_line
