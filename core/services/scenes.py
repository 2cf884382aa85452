"""Scenes of the main story: opening one when the story goes on, closing one with per-POV summaries.

- `ensure_scene`: the chat's open main scene, opened (players + cast present) if there is none.
- `close_open_scene`: the `scene_closed` event only (no model call), for the turn pipeline,
  which closes a scene before a skip and summarizes it after the reply.
- `apply_scene_close_summary`: for each character present, ONE narrative call (purpose
  "scene_close") writing the scene from that character's point of view, from what it witnessed:
  a short scene's lines; a long one's parts (`rolling_summaries`, any long stretch not yet in a
  part written first) and the lines after them, never the raw transcript of a long scene.
  Recorded as a memory of kind "summary" (`summary_of` "scene", covering the scene's turns),
  pov = the character, witnessed by that character and by each player present who witnessed
  every line of the scene that character did (`rolling_summaries.scene_witnesses`).  A "Key quotes" suffix follows, built from the
  immutable text of the scene's turns whose memories (witnessed by that character) have
  significance >= 2, each quote cut at `QUOTE_CHARS`.  Summarizing the same scene again
  retracts the earlier summary first and strips any "Key quotes" the model echoed, so the
  suffix is never doubled (idempotent).  Then the thread detector (`plot.detect_threads`)
  reads the transcript of this scene only (its newest lines that fit); its failure is logged
  with the exception.  Then each character's story so far takes in the scene summaries that
  dropped out of the prompt's latest few (`story_so_far.refresh`).  Every request fits
  `context_tokens`.
- A summary the model failed to write is owed, per character (`owed_summaries`), and
  written later by `summarize_owed`: after the chat's next reply, or at the next close.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from core.eventlog import Database, Readable, Writable, writing
from core.llm.base import ChatMessage, LLMClient
from core.services import plot, rolling_summaries
from core.services.dialogue import Cast, load_cast
from core.services.macros import story_time
from core.services.tokens import DEFAULT_CONTEXT_TOKENS, estimate_prompt_tokens, estimate_tokens
from core.services.transcripts import newest_within
from core.state import memory as memory_state
from core.state import summaries as summary_state
from core.state import turns as turn_state
from core.state import world
from core.state.turns import KeyQuote

log = logging.getLogger(__name__)

PURPOSE = "scene_close"
KEY_QUOTES_HEADER = "Key quotes:"
QUOTE_CHARS = 200
KEY_QUOTES = 3
SUMMARY_MAX_TOKENS = 400


@dataclass(frozen=True)
class SceneCloseResult:
    """A closed scene and the summary each present character wrote of it (name -> summary)."""

    scene_id: int
    summaries: dict[str, str]


async def ensure_scene(target: Writable, cast: Cast) -> world.Scene:
    """The chat's open main scene; if none is open, one opens now with the players and the cast."""
    async with writing(target) as tx:
        scene = await world.current_scene(tx, cast.chat.chat_id)
        if scene is None:
            scene = await world.open_scene(tx, cast.chat.chat_id, present=[*cast.player_ids, *cast.present_ids])
        return scene


async def close_open_scene(target: Writable, chat_id: str, *, cause_turn_id: int | None = None) -> world.Scene | None:
    """Close the chat's open main scene (event only, no summary); None if none was open."""
    async with writing(target) as tx:
        scene = await world.current_scene(tx, chat_id)
        if scene is None:
            return None
        return await world.close_scene(tx, chat_id, scene.scene_id, cause_turn_id=cause_turn_id)


def strip_key_quotes(text: str) -> str:
    """`text` without any "Key quotes" section (a model may echo an earlier summary)."""
    index = text.find(KEY_QUOTES_HEADER)
    return (text[:index] if index >= 0 else text).strip()


async def key_quotes(source: Readable, scene_id: int, pov: str, limit: int = KEY_QUOTES) -> list[KeyQuote]:
    """The scene's `limit` most significant shown turns for `pov` (`core.state.turns.key_quotes`)."""
    return await turn_state.key_quotes(source, scene_id, pov, limit)


def key_quotes_suffix(cast: Cast, quotes: list[KeyQuote]) -> str:
    if not quotes:
        return ""
    lines = [f'- {q.speaker_name or cast.name_of(q.speaker)}: "{" ".join(q.text.split())[:QUOTE_CHARS]}"' for q in quotes]
    return f"\n\n{KEY_QUOTES_HEADER}\n" + "\n".join(lines)


def summary_messages(
    cast: Cast, character: world.Character, scene: world.Scene, scene_text: str, others: list[str],
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> list[ChatMessage]:
    """One instruction: a first-person, past-tense summary from `character`'s own point of view."""
    when = story_time(scene.started_at)
    system = (
        f"You are {character.name}. Who you are:\n" + rolling_summaries.brief(character, cast, context_tokens)
        + f"\n\nA scene has just ended (it began {when}). Write {character.name}'s own short summary of it: "
        f"at most five sentences, in the first person (\"I\") and the past tense, only what {character.name} "
        f"saw, heard and felt, and what it means to {character.name}. Name people by their names. "
        "No omniscient narration, no quotes list, no heading."
    )
    who = ", ".join(others) if others else "nobody else"
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Also there: {who}.\nThe scene:\n{scene_text}"}]


async def scene_material(
    db: Database, llm: LLMClient, cast: Cast, scene: world.Scene, character: world.Character, room: int,
    context_tokens: int,
) -> str:
    """What `character` summarizes the scene from, within `room` tokens: the lines it witnessed, or
    for a long scene its parts (a long stretch not yet in one is written first) and the lines after."""
    who = character.character_id
    await rolling_summaries.write_parts(db, llm, cast.chat.chat_id, scene, context_tokens=context_tokens,
                                        leave_tokens=room // 2, only=[who])
    parts = await summary_state.scene_parts(db, scene.scene_id, who)
    tail = await turn_state.witnessed_scene_turns(
        db, scene.scene_id, who, after_turn_id=parts[-1].covers_to_turn if parts else None)
    if not parts:
        return newest_within(cast, tail, room)
    noted = "\n".join(f"- {p.text}" for p in parts)
    rest = newest_within(cast, tail, room - estimate_tokens(noted) - 20) if tail else "(nothing more)"
    return f"What you noted as it went on:\n{noted}\n\nThe lines after that:\n{rest}"


async def _summary_for(
    db: Database, llm: LLMClient, cast: Cast, scene: world.Scene, character: world.Character, context_tokens: int
) -> str:
    others = [cast.name_of(p) for p in scene.present if p != character.character_id]
    room = context_tokens - estimate_prompt_tokens(summary_messages(cast, character, scene, "", others, context_tokens))
    material = await scene_material(db, llm, cast, scene, character, room, context_tokens)
    messages = summary_messages(cast, character, scene, material, others, context_tokens)
    reply = await llm.generate(messages, purpose=PURPOSE, role="narrative", max_tokens=SUMMARY_MAX_TOKENS)
    body = strip_key_quotes(reply.strip() if isinstance(reply, str) else str(reply)) or "(nothing to tell)"
    return body + key_quotes_suffix(cast, await key_quotes(db, scene.scene_id, character.character_id))


async def _previous_summaries(source: Readable, scene_id: int, pov: str) -> list[int]:
    return await memory_state.live_summary_ids(source, scene_id, pov)


async def owed_summaries(source: Readable, chat_id: str) -> dict[int, list[str]]:
    """Closed main scenes of the chat that still lack a present character's summary (its call
    failed, or a regenerate retracted it): scene id -> the characters whose summary is owed."""
    owed: dict[int, list[str]] = {}
    for scene_id, pov in await world.scenes_owing_summaries(source, chat_id):
        owed.setdefault(scene_id, []).append(pov)
    return owed


async def apply_scene_close_summary(
    db: Database, llm: LLMClient, chat_id: str, scene_id: int, only: list[str] | None = None,
    *, context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> SceneCloseResult:
    """Write (or rewrite) each present character's summary of a scene (with `only`, just those
    characters'), then, once every present character has one, detect plot threads.

    Each character's summary stands alone: those the model wrote are recorded even if
    another's call failed; then the first failure is raised, and the missing summaries
    stay owed (`owed_summaries`) for `summarize_owed` to write later."""
    cast = await load_cast(db, chat_id)
    scene = await world.require_scene(db, scene_id)
    turns = await turn_state.scene_turns(db, scene_id)
    characters = [c for c in [await world.get_character(db, p) for p in scene.present if not cast.is_player(p)] if c]
    if only is not None:
        characters = [c for c in characters if c.character_id in only]
    names = {c.character_id: c.name for c in characters}
    cast = replace(cast, characters=tuple({c.character_id: c for c in (*cast.characters, *characters)}.values()))
    texts = await asyncio.gather(
        *(_summary_for(db, llm, cast, scene, c, context_tokens) for c in characters), return_exceptions=True
    )
    covers = (turns[0].turn_id, turns[-1].turn_id) if turns else None
    summaries: dict[str, str] = {}
    async with db.transaction() as tx:
        for character, text in zip(characters, texts, strict=True):
            if isinstance(text, BaseException):
                continue
            who = character.character_id
            for old in await _previous_summaries(tx, scene_id, who):
                await memory_state.retract_memory(tx, chat_id, old, reason="scene summarized again")
            witnesses = await rolling_summaries.scene_witnesses(tx, cast, scene, who, covers)
            await memory_state.record_memory(
                tx, chat_id, text, witnesses, significance=3, kind="summary", pov=who, scene_id=scene_id,
                summary_of="scene", covers=covers,
            )
            summaries[names[who]] = text
    failures = [t for t in texts if isinstance(t, BaseException)]
    if failures:
        raise failures[0]
    try:
        await plot.detect_threads(db, llm, chat_id, newest_within(cast, turns, context_tokens), scene_id=scene_id,
                                  context_tokens=context_tokens)
    except Exception:
        log.exception("thread detection failed for scene %s of chat %s", scene_id, chat_id)
    try:
        from core.services import story_so_far  # it builds on this module's summaries

        await story_so_far.refresh(db, llm, chat_id, [c.character_id for c in characters],
                                   context_tokens=context_tokens)
    except Exception:
        log.exception("the story so far was not refreshed after scene %s of chat %s", scene_id, chat_id)
    return SceneCloseResult(scene_id, summaries)


async def summarize_owed(
    db: Database, llm: LLMClient, chat_id: str, *, context_tokens: int = DEFAULT_CONTEXT_TOKENS
) -> list[SceneCloseResult]:
    """Write every summary the chat's closed scenes still owe, oldest scene first (a model
    failure is raised after what could be written was)."""
    return [
        await apply_scene_close_summary(db, llm, chat_id, scene_id, only=povs, context_tokens=context_tokens)
        for scene_id, povs in (await owed_summaries(db, chat_id)).items()
    ]
