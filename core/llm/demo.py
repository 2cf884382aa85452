"""The offline demo model: plausible in-character replies with no network and no weights.

Used by `rpbot dev` when no LLM is configured, so the whole bot can be tried end to end.
Deterministic: the same messages and purpose always give the same reply (templates are
picked by a hash of the conversation), and the reply picks up a word or two from the user's
last line so it feels like an answer.

System-prompt convention (the engine's prompt builder writes these lines; any order, anywhere
in any system message; the first occurrence of each wins; all are optional):

    Character: <name of the character who speaks now>
    Personality: <comma-separated traits, e.g. "curious, dry-witted, kind">
    Scenario: <where and when, e.g. "a rain-soaked lighthouse at dusk">
    User: <the player's name>

Purposes:
- "narrate", "greeting", "meanwhile", "regenerate" and any unknown narrative purpose:
  an in-character reply (a short action in *asterisks* and a spoken line or two).
- "summary", "scene_close": a short point-of-view summary with a "Key quotes" section.
- any call with `response_schema`: JSON for a valid instance of the schema built from its
  defaults (see `core.llm.structured.placeholder_instance`): the classifier's safe answer.
- other classifier calls: a short neutral answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from core.llm.base import ChatMessage, ModelRole
from core.llm.structured import placeholder_instance

_FIELD_LINE = re.compile(r"^\s*(Character|Personality|Scenario|User)\s*:\s*(.+?)\s*$", re.I | re.M)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be been before being below between
    both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just let
    me more most my myself no nor not now of off on once only or other our ours out over own
    really same she should so some such than that the their theirs them then there these they
    this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yeah yes okay ok hey hi hello well tell
    know think want like get got going go say said something anything thing things""".split()
)

_ACTIONS = [
    "*{name} looks up, {trait} as ever.*",
    "*{name} leans back and considers this for a long moment.*",
    "*A small smile tugs at the corner of {name}'s mouth.*",
    "*{name} sets down what they were holding, suddenly attentive.*",
    "*{name} tilts their head, the {trait} streak plain on their face.*",
    "*{name} glances around {place} before answering.*",
    "*{name} lets out a quiet breath and steps a little closer.*",
]
_TOPIC_LINES = [
    '"{Topic}? That is not what I expected to hear from you."',
    '"So it comes down to {topic}. Go on, I am listening."',
    '"You keep coming back to {topic}. Why does it matter so much to you?"',
    '"{Topic}... I have thought about that more than I would like to admit."',
    '"If this is about {topic}, then we should be careful who overhears us."',
]
_PLAIN_LINES = [
    '"Well, {user}, you certainly know how to get my attention."',
    '"I hear you. Say the rest of it, the part you are holding back."',
    '"That is fair. But you did not come all this way only to tell me that."',
]
_FOLLOW_UPS = [
    '"What would you have me do about it?"',
    '"Tell me more, and start from the beginning."',
    '"Stay a while. {Place_sentence}"',
    '"Whatever happens next, I would rather face it with you than alone."',
    "*They wait, watching your face for an answer.*",
]
_GREETINGS = [
    '*{name} notices you and straightens up.* "There you are, {user}. I was starting to wonder '
    'if you would come at all."',
    '*{name} glances up from {place}.* "Oh! Hello. I did not hear you come in."',
    '*{name} offers a {trait} little nod.* "Welcome. Sit, if you like. We have time."',
]


@dataclass(frozen=True)
class CharacterSheet:
    """What the demo model knows about the speaker, read from the system prompt."""

    name: str = "The narrator"
    personality: tuple[str, ...] = ()
    scenario: str = ""
    user: str = "friend"

    @classmethod
    def from_messages(cls, messages: Sequence[ChatMessage]) -> CharacterSheet:
        fields: dict[str, str] = {}
        for message in messages:
            if message["role"] != "system":
                continue
            for key, value in _FIELD_LINE.findall(message["content"]):
                fields.setdefault(key.lower(), value)
        traits = tuple(
            t.strip().rstrip(".")
            for t in re.split(r"[,;]", fields.get("personality", ""))
            if t.strip()
        )
        return cls(
            name=fields.get("character", cls.name),
            personality=traits,
            scenario=fields.get("scenario", "").rstrip("."),
            user=fields.get("user", cls.user),
        )


class DemoLLM:
    """Deterministic offline model implementing `LLMClient`. `word_delay_s` paces streaming."""

    def __init__(self, *, word_delay_s: float = 0.02) -> None:
        self.word_delay_s = word_delay_s

    async def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        response_schema: type[BaseModel] | None = None,
        stop: Sequence[str] | None = None,
    ) -> str:
        return self.reply_for(messages, purpose=purpose, role=role, response_schema=response_schema)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> AsyncGenerator[str, None]:
        text = self.reply_for(messages, purpose=purpose, role=role)
        for word in re.findall(r"\S+\s*", text):
            if self.word_delay_s > 0:
                await asyncio.sleep(self.word_delay_s)
            yield word

    async def aclose(self) -> None:
        return None

    def reply_for(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        response_schema: type[BaseModel] | None = None,
    ) -> str:
        """The reply text, synchronously (the same for `generate` and `stream`)."""
        if response_schema is not None:
            return placeholder_instance(response_schema).model_dump_json()
        rng = random.Random(_conversation_seed(messages, purpose))
        sheet = CharacterSheet.from_messages(messages)
        if purpose in ("summary", "scene_close"):
            return _summary(sheet, messages)
        if role == "classifier":
            return "none"
        last_user = _last_user_line(messages)
        if purpose == "greeting" or not last_user:
            return _fill(rng.choice(_GREETINGS), sheet, rng, topic="")
        return _in_character_reply(sheet, last_user, rng)


def _conversation_seed(messages: Sequence[ChatMessage], purpose: str) -> int:
    canonical = json.dumps(
        [purpose, [[m["role"], m["content"]] for m in messages]], ensure_ascii=False
    )
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")


def _last_user_line(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message["role"] == "user" and message["content"].strip():
            return message["content"].strip()
    return ""


_DETERMINERS = {
    "the": "the",
    "a": "a",
    "an": "an",
    "this": "this",
    "that": "that",
    "these": "these",
    "those": "those",
    "his": "his",
    "her": "her",
    "their": "their",
    "our": "our",
    "my": "your",
    "your": "my",
}


def _topic_of(line: str) -> str:
    """What the user's line is about: its first noun phrase ("an old map", "your sword",
    with my/your swapped to the speaker's view), else its longest content word."""
    words = _WORD.findall(line)
    for index, word in enumerate(words):
        determiner = _DETERMINERS.get(word.lower())
        if determiner is None:
            continue
        phrase: list[str] = []
        for following in words[index + 1 : index + 4]:
            if following.lower() in _STOPWORDS or following.lower() in _DETERMINERS:
                break
            phrase.append(following)
        if phrase:
            return " ".join([determiner, *phrase])
    content = [w for w in words if w.lower() not in _STOPWORDS and len(w) > 2]
    return max(content, key=len) if content else ""


def _in_character_reply(sheet: CharacterSheet, last_user: str, rng: random.Random) -> str:
    topic = _topic_of(last_user)
    lines = [rng.choice(_ACTIONS)]
    lines.append(rng.choice(_TOPIC_LINES if topic else _PLAIN_LINES))
    lines.append(rng.choice(_FOLLOW_UPS))
    return " ".join(_fill(line, sheet, rng, topic=topic) for line in lines)


def _fill(template: str, sheet: CharacterSheet, rng: random.Random, *, topic: str) -> str:
    trait = rng.choice(sheet.personality) if sheet.personality else "thoughtful"
    place = sheet.scenario or "the room"
    place_sentence = (
        f"It is quiet here, {sheet.scenario[0].lower() + sheet.scenario[1:]}."
        if sheet.scenario
        else "It is quiet here, and the night is young."
    )
    return template.format(
        name=sheet.name,
        trait=trait.lower(),
        place=place[0].lower() + place[1:] if place else place,
        user=sheet.user,
        topic=topic,
        Topic=topic[:1].upper() + topic[1:],
        Place_sentence=place_sentence,
    )


def _summary(sheet: CharacterSheet, messages: Sequence[ChatMessage]) -> str:
    spoken = [m for m in messages if m["role"] in ("user", "assistant") and m["content"].strip()]
    topics = [t for t in (_topic_of(m["content"]) for m in spoken if m["role"] == "user") if t]
    about = ", ".join(dict.fromkeys(topics[-3:])) or "small things"
    where = f" in {sheet.scenario[0].lower() + sheet.scenario[1:]}" if sheet.scenario else ""
    quotes = [f'- "{_first_sentence(m["content"])}"' for m in spoken[-2:]]
    return (
        f"From {sheet.name}'s point of view: {sheet.user} and {sheet.name} talked{where} "
        f"about {about}. {sheet.name} will remember how it felt.\n\n"
        "Key quotes:\n" + ("\n".join(quotes) if quotes else "- (nothing memorable was said)")
    )


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip().replace("\n", " "), maxsplit=1)[0]
    return sentence[:160].replace('"', "'")
