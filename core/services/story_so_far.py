"""The story so far: each character's own account of what came before its latest scene summaries.

A reply prompt shows a character's newest scene summaries (`recall.SUMMARIES`, more in a larger
budget).  As scenes close, the summaries that drop out of those are taken into the character's
story so far, one at a time (purpose "story_so_far", the narrative model): its previous account
and the summary that left make the new account, in the first person, at most the words the
prompt's "story" share holds.  Each account is a memory (kind "summary", `summary_of` "story",
witnessed by the character alone), whose `scene_id` is the newest scene it takes in and whose
covered turns are those of all the scenes in it, so a rewind into any of them retracts it.  The
newest live one is current; the older ones are kept (not recalled: the scene summaries they came
from are).  A refresh that fails is made at the next close (what is not yet taken in is found
again).  The summaries themselves stay in the memory, found by recall, whatever fits the prompt.
"""

from __future__ import annotations

import logging

from core.eventlog import Database
from core.llm.base import ChatMessage, LLMClient
from core.services import recall
from core.services.budget import SECTION_SHARES, scaled, share_tokens
from core.services.card_text import whole_sentences
from core.services.dialogue import Cast, load_cast
from core.services.rolling_summaries import brief
from core.services.scenes import strip_key_quotes
from core.state import memory as memory_state
from core.state import summaries, world
from core.state.memory import Memory

log = logging.getLogger(__name__)

PURPOSE = "story_so_far"


def story_tokens(context_tokens: int) -> int:
    """How long an account may be: the prompt's "story" share (less what the card takes of the budget)."""
    return share_tokens(SECTION_SHARES["story"] * 0.75, context_tokens)


def story_messages(
    cast: Cast, character: world.Character, previous: str, summary: str, context_tokens: int
) -> list[ChatMessage]:
    name, words = character.name, max(40, story_tokens(context_tokens) * 3 // 4)
    system = (
        f"You are {name}. Who you are:\n{brief(character, cast, context_tokens)}\n\n"
        f"Write {name}'s own account of the story so far, in the first person (\"I\") and the past tense: what "
        f"happened, who {name} met and what it meant to {name}, in at most {words} words. Keep the names, places and "
        "things that still matter; let small things go. No heading."
    )
    before = f"Your account of the story so far:\n{previous}\n\n" if previous else ""
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"{before}What happened next, as you remember that scene:\n{summary}"}]


async def refresh(db: Database, llm: LLMClient, chat_id: str, povs: list[str], *, context_tokens: int) -> int:
    """Take into each of `povs`' story so far the scene summaries that dropped out of its latest
    few; returns how many accounts were written."""
    cast = await load_cast(db, chat_id)
    keep = scaled(recall.SUMMARIES, context_tokens)
    written = 0
    for who in povs:
        character = await world.get_character(db, who)
        if character is None:
            continue
        story = await summaries.latest_story(db, chat_id, who)
        for summary in await summaries.scene_summaries_to_fold(
                db, chat_id, who, keep_newest=keep, after_scene=story.scene_id if story else None):
            story = await _take_in(db, llm, cast, character, story, summary, context_tokens)
            written += 1
    return written


async def _take_in(
    db: Database, llm: LLMClient, cast: Cast, character: world.Character, story: Memory | None, summary: Memory,
    context_tokens: int,
) -> Memory:
    cap = story_tokens(context_tokens) * 4
    previous = whole_sentences(story.text, cap) if story else ""
    told = whole_sentences(strip_key_quotes(summary.text), cap * 2)
    messages = story_messages(cast, character, previous, told, context_tokens)
    text = (await llm.generate(messages, purpose=PURPOSE, role="narrative",
                               max_tokens=story_tokens(context_tokens))).strip() or previous or told
    ends = [(m.covers_from_turn, m.covers_to_turn) for m in (story, summary)
            if m is not None and m.covers_from_turn is not None and m.covers_to_turn is not None]
    covers = (min(first for first, _ in ends), max(last for _, last in ends)) if ends else None
    return await memory_state.record_memory(
        db, cast.chat.chat_id, text, [character.character_id], significance=3, kind="summary",
        pov=character.character_id, scene_id=summary.scene_id, story_time=summary.story_time, summary_of="story",
        covers=covers,
    )
