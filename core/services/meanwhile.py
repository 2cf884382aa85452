"""Meanwhile scenes: two characters, off-screen, without the players.

`run_meanwhile` opens a scene of kind "meanwhile" with the two characters present
(no player), writes `LINES` alternating lines (one streamed narrative call each,
purpose "meanwhile"), each recorded as a memory witnessed by those two only (no player
ever recalls it), closes the scene and queues a digest for the players.  The lines are not
turns of the main story (they never show up in its dialogue or its regenerate).
The digest is surfaced on the player's next turn and consumed exactly once
(`talk.TurnPipeline.post_turn`).  Each character brings the story into the scene: where
it stands (the story's scenario), the story time and part of day, its own memories of
earlier scenes and its latest memories (`story_so_far`).  A cancel stops the line being written; what was
said is kept (the last line marked truncated) and the digest is still queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from core.errors import InvalidCastError, UnknownCharacterError
from core.eventlog import Database
from core.llm.base import ChatMessage, LLMClient
from core.llm.roles import alternating
from core.services import recall
from core.services.budget import BRIEF_SHARE, share_tokens
from core.services.card_text import brief_within, nickname, story_scenario, whole_sentences
from core.services.dialogue import Cast, join_names, load_cast
from core.services.generation import Generation
from core.services.prompt import finish_with_user, fold_lines
from core.services.replies import MAX_STOP_SEQUENCES, pending_prefix, strip_speaker_name
from core.services.story_clock import time_now_line, when_phrase
from core.services.tokens import DEFAULT_CONTEXT_TOKENS, ends_within, estimate_tokens, first_within
from core.state import digests as digest_state
from core.state import memory as memory_state
from core.state import world

PURPOSE = "meanwhile"
LINES = 4
LINE_CHARS = 400
LINE_MAX_TOKENS = 300
DIGEST_LINE_CHARS = 160
MEMORY_ITEMS = 4  # summaries, and latest memories, each character brings into the scene
SETTING_CHARS = 400
STORY_SHARE = 0.3  # of a line's request, for what the speaker brings into the scene


@dataclass(frozen=True)
class MeanwhileLine:
    speaker: world.Character
    text: str
    truncated: bool = False


async def resolve_character(
    db: Database, ident: str, *, usable_by: Sequence[str] | None = None, prefer: Sequence[world.Character] = ()
) -> world.Character:
    """A character by id or display name (case-insensitive): one of `prefer` (a story's cast), else
    one registered that a player of `usable_by` may use (None: any); else UnknownCharacterError
    (a character nobody asking may use is not found, as if it did not exist)."""
    wanted = ident.strip().lower()
    candidates = [*prefer, *(c for c in await world.list_characters(db)
                             if usable_by is None or any(c.usable_by(p) for p in usable_by))]
    for character in candidates:
        if wanted in (character.character_id.lower(), character.name.lower()):
            return character
    raise UnknownCharacterError(ident)


async def story_so_far(db: Database, cast: Cast, speaker: world.Character, setting: str) -> str:
    """What `speaker` brings into the scene: where the story stands, its own memories of
    earlier scenes and its latest memories (witnessed by it, read in SQL like every memory)."""
    now = cast.chat.clock
    chat_id = cast.chat.chat_id
    summaries = await recall.pov_summaries(db, chat_id, speaker.character_id, limit=MEMORY_ITEMS)
    recent = await memory_state.recent_memories_for(db, chat_id, speaker.character_id, MEMORY_ITEMS, kind="event")
    parts = [f"Where the story stands: {setting}"] if setting else []
    if summaries:
        parts.append(f"{speaker.name}'s memories of earlier scenes:\n"
                     + "\n".join(f"- ({when_phrase(m.story_time, now)}) {m.text}" for m in summaries))
    if recent:
        parts.append(f"What {speaker.name} remembers most recently:\n"
                     + "\n".join(f"- ({when_phrase(m.story_time, now)}) {m.text[:LINE_CHARS]}" for m in recent))
    return "\n\n".join(parts)


def line_messages(
    cast: Cast, speaker: world.Character, premise: str, lines: list[MeanwhileLine], story: str = "",
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> list[ChatMessage]:
    """`speaker`'s next line: its own lines are `assistant`, the other's `user` (named);
    `story` is what `story_so_far` gives the speaker.  Within `context_tokens`: the card, the
    story and the premise each cut to their share, and the lines said so far to what is left."""
    other = next(c for c in cast.characters if c.character_id != speaker.character_id)
    system = (
        f"You are {speaker.name}.\n" + brief_within(speaker, cast, share_tokens(BRIEF_SHARE, context_tokens) * 4)
        + (f"\n\n{first_within(story, share_tokens(STORY_SHARE, context_tokens))}" if story else "")
        + f"\n\nMeanwhile, away from {join_names([p.name for p in cast.present_players])}, {speaker.name} is with "
        f"{other.name}."
        + (f" Situation: {first_within(premise, share_tokens(0.05, context_tokens)).rstrip('.')}." if premise else "")
        + f"\n{time_now_line(cast.chat.clock)}"
        + f"\nWrite {speaker.name}'s next line only: one short paragraph of speech and action."
    )
    room = context_tokens - estimate_tokens(system) - 40
    said = [(line.speaker.character_id, ends_within(line.text, room // max(1, len(lines)) - 8)) for line in lines]
    dialogue = fold_lines(cast, speaker.character_id, said)
    opening = f"[Scene: {premise or 'the two of them talk.'}]"
    messages = alternating([{"role": "system", "content": system}, *dialogue], opening=opening)
    return finish_with_user(messages, "", f"[{speaker.name} goes on.]")


def digest_text(a: world.Character, b: world.Character, premise: str, lines: list[MeanwhileLine]) -> str:
    said = " / ".join(
        f'{line.speaker.name}: "{" ".join(line.text.split())[:DIGEST_LINE_CHARS]}"' for line in lines[:2]
    )
    head = f"Meanwhile, {a.name} and {b.name}" + (f" ({premise})" if premise else "")
    return head + (f": {said}" if said else ".")


async def run_meanwhile(
    db: Database, llm: LLMClient, chat_id: str, a: str, b: str, premise: str, control: Any,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> AsyncGenerator[tuple[MeanwhileLine, bool], None]:
    """Yield (line so far, done) as the lines are written; `control` is the chat's in-flight
    handle (`cancel_requested`, `generation`), so a cancel stops the scene."""
    story = await load_cast(db, chat_id)
    usable_by = [story.chat.owner, *story.player_ids]
    first = await resolve_character(db, a, usable_by=usable_by, prefer=story.characters)
    second = await resolve_character(db, b, usable_by=usable_by, prefer=story.characters)
    if first.character_id == second.character_id:
        raise InvalidCastError(f"a meanwhile scene needs two different characters, got {a!r} twice")
    scene = await world.open_scene(db, chat_id, kind="meanwhile", title=premise[:200],
                                   present=[first.character_id, second.character_id])
    cast = replace(story, characters=(first, second))
    setting = whole_sentences(story_scenario(story), SETTING_CHARS)
    stories = {c.character_id: await story_so_far(db, cast, c, setting) for c in (first, second)}
    lines: list[MeanwhileLine] = []
    try:
        for index in range(LINES):
            if control.cancel_requested:
                break
            speaker = first if index % 2 == 0 else second
            other = second if speaker is first else first
            names = [speaker.name, nickname(speaker)]
            generation = control.generation = Generation(
                llm, line_messages(cast, speaker, premise, lines, stories[speaker.character_id], context_tokens),
                purpose=PURPOSE,
                max_tokens=LINE_MAX_TOKENS,
                stop=[f"\n{other.name}:", *(f"\n{p.name}:" for p in cast.present_players)][:MAX_STOP_SEQUENCES],
            )
            if control.cancel_requested:
                generation.cancel()
            so_far = ""
            try:
                async with aclosing(generation.deltas()) as deltas:
                    async for delta in deltas:
                        so_far += delta
                        if not pending_prefix(so_far, names):
                            yield MeanwhileLine(speaker, strip_speaker_name(so_far, names)), False
            finally:
                await generation.aclose()
            so_far = strip_speaker_name(so_far, names)
            text = so_far if generation.stopped else so_far.strip()
            if text.strip():
                line = MeanwhileLine(speaker, text[:LINE_CHARS * 4], generation.stopped)
                lines.append(line)
                yield line, True
            if generation.stopped:
                break
    finally:
        await asyncio.shield(_record(db, chat_id, scene.scene_id, first, second, premise, lines))


async def _record(
    db: Database, chat_id: str, scene_id: int, a: world.Character, b: world.Character, premise: str,
    lines: list[MeanwhileLine],
) -> None:
    witnesses = [a.character_id, b.character_id]
    async with db.transaction() as tx:
        for line in lines:
            clipped = " ".join(line.text.split())[:LINE_CHARS]
            await memory_state.record_memory(
                tx, chat_id, f'{line.speaker.name} said: "{clipped}"', witnesses, significance=2, scene_id=scene_id,
            )
        await world.close_scene(tx, chat_id, scene_id)
        await digest_state.create_digest(
            tx, chat_id, digest_text(a, b, premise, lines), scene_id=scene_id, participants=witnesses,
        )
