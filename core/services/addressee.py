"""Routing the player's line: who answers, and whether it asks for a time skip or a scene close.

The speaker is chosen among every character present without a model whenever the line makes
it plain (`local_addressee`: the line speaks to one character by name, replies to one's
message, or goes on with whoever spoke last; after a character's entrance, the host).  The model is asked (ONE classifier request, purpose
"addressee", answered as an `AddresseeDecision` that carries the addressee AND the
intent: a skip of a duration, a jump to a time, closing the scene) only when the line
calls more than one by name or names one in passing, or when `may_carry_intent` (a local regex) says it may
ask for a skip, a jump or a scene close; otherwise no call is made at all.
The safe answer is "no intent": every intent field defaults to nothing, and a
duration or time the classifier gives that `core.timeparse` cannot read is ignored.
Anything unusable falls back to a safe choice and is logged, never raised:
invalid JSON or an unknown speaker -> the host; an unreachable model -> the host;
"low" confidence -> whoever spoke last (the player is most likely still talking
to them; the host after an entrance), else the host.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from core.llm.base import ChatMessage, LLMClient
from core.llm.structured import generate_json
from core.services.card_text import fill, whole_sentences
from core.services.dialogue import GUEST_SUFFIX, Cast, players_phrase
from core.services.macros import story_time
from core.services.timeskip import MAX_TIME_MOVE
from core.services.tokens import (
    DEFAULT_CONTEXT_TOKENS,
    ends_within,
    estimate_prompt_tokens,
    estimate_tokens,
    last_lines_within,
)
from core.state import world
from core.state.turns import Turn
from core.timeparse import parse_duration, parse_story_time

log = logging.getLogger(__name__)

PURPOSE = "addressee"
CONTEXT_TURNS = 6
LINE_CHARS = 300
ROSTER_CHARS = 240
ROUTE_MAX_TOKENS = 400  # room for a model that thinks before it answers


class AddresseeDecision(BaseModel):
    """The classifier's answer: the id (or name) of the character who should answer."""

    speaker: str = ""
    confidence: Literal["high", "medium", "low"] = "medium"
    time: Literal["none", "skip", "jump"] = "none"  # safe option first
    amount: str = ""  # skip: a duration ("8h", "an hour"); jump: a time ("tomorrow 9am")
    close_scene: bool = False


@dataclass(frozen=True)
class Route:
    """Who answers, and what the line asks of the story besides an answer."""

    speaker: world.Character
    skip: timedelta | None = None
    jump: datetime | None = None
    close_scene: bool = False

    @property
    def has_intent(self) -> bool:
        return self.close_scene or self.skip is not None or self.jump is not None


_INTENT_WORDS = re.compile(
    r"\b(sleep|slept|asleep|nap|rest|later|tomorrow|tonight|morning|noon|afternoon|evening|night|midnight|dawn|dusk"
    r"|hours?|minutes?|days?|weeks?|months?|years?|skip|jump|fast[- ]forward|time passes|meanwhile|wait(?:s|ed)? (?:for|until|till)"
    r"|until|till|end (?:the |this )?scene|scene ends|close (?:the |this )?scene|fade (?:out|to black)"
    r"|part(?:s|ed)? ways|we part|farewell|goodbye|good ?night|\d+ ?(?:h|m|d|am|pm)\b)",
    re.IGNORECASE,
)


def may_carry_intent(text: str) -> bool:
    """A cheap local check: could `text` ask for a time skip / jump or a scene close?"""
    return _INTENT_WORDS.search(text) is not None


_NOT_NAMES = frozenset("the and of von van der den del de la le".split())


def _name_words(character: world.Character) -> set[str]:
    """The words a player may call `character` by: those of its name (a title too: "Captain"),
    not of an epithet after "of" ("Ilse Varga of the Northern Post" is not called "Post")."""
    name = re.split(r"\s+of\s+", character.name, maxsplit=1)[0]
    words = {w.lower() for w in re.findall(r"[\w'-]+", name) if len(w) > 2}
    return (words - _NOT_NAMES) or words


_INTERJECTION = r"(?:(?:hey|hi|hello|oh|ah|so|well|and|now|look|listen|morning|evening|good\s+\w+)[\s,!.]+)?"


def _calls_by(text: str, word: str) -> bool:
    """Whether `word` (a name word) is how the line speaks TO someone: at its start
    ("Ilse, any letters?", "Hello Ilse"), after a comma ("Tell me, Ilse, ..."), or at its
    end ("..., Ilse?"), rather than a mention in passing ("Does Ilse always bring news?")."""
    name = re.escape(word)
    return bool(
        re.search(rf"^\W*{_INTERJECTION}{name}\b", text, re.IGNORECASE)
        or re.search(rf",\s*{name}\b", text, re.IGNORECASE)
        or re.search(rf"\b{name}\W*$", text, re.IGNORECASE)
    )


def _calls_by_strictly(text: str, word: str) -> bool:
    """The vocative as a character's reply writes it: set off by a comma or a mark ("Ilse, tell
    him", "..., Ilse.", "Ilse!"); a name starting a sentence ("Ilse hears everything") is not."""
    name = re.escape(word)
    return bool(re.search(rf"\b{name}\s*[,!?]|,\s*{name}\b", text, re.IGNORECASE))


def named_characters(
    cast: Cast, text: str, *, strict: bool = False
) -> tuple[list[world.Character], list[world.Character]]:
    """(the characters present `text` speaks to by name, those it only mentions), each by a
    word of its name that no other character present bears; `strict` for a character's reply
    (`_calls_by_strictly`), else as a player's line calls (`_calls_by`)."""
    calls = _calls_by_strictly if strict else _calls_by
    words = {w.lower() for w in re.findall(r"[\w'-]+", text)}
    own = {c.character_id: _name_words(c) for c in cast.characters}
    called, mentioned = [], []
    for character in cast.characters:
        others = set().union(*(w for cid, w in own.items() if cid != character.character_id))
        hits = (own[character.character_id] - others) & words
        if any(calls(text, word) for word in hits):
            called.append(character)
        elif hits:
            mentioned.append(character)
    return called, mentioned


def local_addressee(
    cast: Cast, dialogue: Sequence[Turn], text: str | Sequence[str], replying_to: str | None = None
) -> world.Character | None:
    """Who answers `text` (a line, or the lines of a round) when it is plain without a model: the
    one character it speaks to by name, else the character whose message it replies to, else
    whoever spoke last (the player is still talking to them), else the host.  None when it calls
    more than one by name, or names one only in passing ("Does Ilse always bring news?"): the
    model decides."""
    called: list[world.Character] = []
    mentioned: list[world.Character] = []
    for said in [text] if isinstance(text, str) else text:
        by_name, in_passing = named_characters(cast, said)
        called += [c for c in by_name if c not in called]
        mentioned += [c for c in in_passing if c not in mentioned and c not in called]
    mentioned = [c for c in mentioned if c not in called]
    if len(called) == 1 and not mentioned:
        return called[0]
    if called or mentioned:
        return None
    if replying_to is not None and cast.get(replying_to) is not None:
        return cast.get(replying_to)
    return last_speaker(cast, dialogue) or cast.host


def last_speaker(cast: Cast, dialogue: Sequence[Turn]) -> world.Character | None:
    """Whom a line that names nobody goes on with: the character present who spoke last, or the
    host when that was a character's entrance (the newcomer has not been spoken to yet)."""
    for turn in reversed(dialogue):
        character = cast.get(turn.speaker) if turn.role == "assistant" else None
        if character is not None:
            return cast.host if turn.source_id and turn.source_id.endswith(GUEST_SUFFIX) else character
    return None


def addressee_messages(
    cast: Cast, dialogue: Sequence[Turn], text: str, context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    author: str | None = None,
) -> list[ChatMessage]:
    """The routing request, within `context_tokens`: the line of the player named `author` (the
    story's owner by default; by its ends when it is very long) and as many of the recent lines as fit."""
    player = author or cast.player.name
    roster = "\n".join(
        f"- {c.character_id} ({c.name})" + (f": {whole_sentences(fill(c.description, c, cast), ROSTER_CHARS)}"
                                            if c.description.strip() else "")
        for c in cast.characters
    )
    ids = " | ".join(f'"{c.character_id}"' for c in cast.characters)
    context = "\n".join(f"{cast.name_of_turn(t)}: {t.text[:LINE_CHARS]}" for t in dialogue[-CONTEXT_TURNS:])
    system = (
        f"You route a roleplay between {players_phrase(cast)} and the characters present. Decide which "
        f"character {player}'s latest line is addressed to, i.e. who should answer it.\n"
        f"Characters present (id and name):\n{roster}\n"
        f"Story time now: {story_time(cast.chat.clock)}.\n"
        "Also decide whether the line moves the story in time: \"skip\" when time passes by a duration "
        "(amount: a duration such as \"8h\" or \"30m\"), \"jump\" when the story goes to a given time "
        "(amount: a time such as \"tomorrow 7am\"), else \"none\" (amount left empty); and whether the "
        "line ends the scene (close_scene). When unsure, answer none and false.\n"
        f"Answer with one JSON object and nothing else. Keys: speaker (one of {ids}), confidence "
        '("high", "medium" or "low"), time ("none", "skip" or "jump"), amount (a string), '
        "close_scene (true or false)."
    )
    room = context_tokens - estimate_prompt_tokens([{"role": "system", "content": system},
                                                    {"role": "user", "content": f"Recent lines:\n\n\n{player}'s latest line:\n"}])
    latest = ends_within(text, room * 2 // 3)
    context = last_lines_within(context, room - estimate_tokens(latest)) if context else ""
    user = (f"Recent lines:\n{context}\n\n" if context else "") + f"{player}'s latest line:\n{latest}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _resolve(cast: Cast, answer: str) -> world.Character | None:
    wanted = answer.strip().lower()
    for character in cast.characters:
        if wanted in (character.character_id.lower(), character.name.lower()):
            return character
    return None


def _pick_speaker(cast: Cast, dialogue: Sequence[Turn], decision: AddresseeDecision, is_fallback: bool) -> world.Character:
    if len(cast.characters) == 1:
        return cast.host
    chosen = _resolve(cast, decision.speaker)
    if chosen is None:
        level = logging.WARNING if decision.speaker.strip() else logging.INFO
        log.log(level, "addressee: no such speaker %r; the host answers", decision.speaker)
        return cast.host
    if decision.confidence == "low" and not is_fallback:
        return last_speaker(cast, dialogue) or cast.host
    return chosen


def _intent(decision: AddresseeDecision, now: datetime) -> tuple[timedelta | None, datetime | None]:
    if decision.time == "skip":
        duration = parse_duration(decision.amount)
        if duration is None or not timedelta(0) < duration <= MAX_TIME_MOVE:
            log.warning("routing: unusable skip duration %r; no skip", decision.amount)
            return None, None
        return duration, None
    if decision.time == "jump":
        when = parse_story_time(decision.amount, now)
        if when is None or not now < when <= now + MAX_TIME_MOVE:
            log.warning("routing: unusable jump time %r (now %s); no jump", decision.amount, now)
            return None, None
        return None, when
    return None, None


async def route(
    llm: LLMClient, cast: Cast, dialogue: Sequence[Turn], text: str, *, author: str | None = None,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> Route:
    """One classifier request: who answers `text` (said by the player named `author`), and any
    skip / jump / scene close it asks for."""
    fallback = AddresseeDecision(speaker=cast.host.character_id, confidence="low")
    decision = await generate_json(
        llm, addressee_messages(cast, dialogue, text, context_tokens, author), purpose=PURPOSE, schema=AddresseeDecision,
        default=fallback, role="classifier", max_tokens=ROUTE_MAX_TOKENS, default_on_llm_error=True,
    )
    speaker = _pick_speaker(cast, dialogue, decision, decision is fallback)
    skip, jump = _intent(decision, cast.chat.clock)
    return Route(speaker, skip, jump, decision.close_scene)


async def choose_addressee(
    llm: LLMClient, cast: Cast, dialogue: Sequence[Turn], text: str, *, author: str | None = None,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
) -> world.Character:
    """The character who answers `text`; the host without any model call if it is alone."""
    if len(cast.characters) == 1:
        return cast.host
    return (await route(llm, cast, dialogue, text, author=author, context_tokens=context_tokens)).speaker
