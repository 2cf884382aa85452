"""The offline demo model: plausible in-character replies with no network and no weights.

Used by `rpbot dev` when no LLM is configured, so the whole bot can be tried end to end.
Deterministic: the same messages and purpose always give the same reply (templates are
picked by a hash of the conversation), and the reply picks up a word or two from the user's
last line so it feels like an answer. It names the place in a few words, never quotes the card
back, and does not open a reply the way one of its last few replies opened.

System-prompt convention (the engine's prompt builder writes these lines; any order, anywhere
in any system message; the first occurrence of each wins; all are optional):

    Character: <name of the character who speaks now>
    Personality: <comma-separated traits, e.g. "curious, dry-witted, kind">
    Scenario: <where and when, e.g. "a rain-soaked lighthouse at dusk">
    User: <the player's name>

Purposes:
- "narrate", "greeting", "meanwhile", "regenerate" and any unknown narrative purpose:
  an in-character reply (a short action in *asterisks* and a spoken line or two).
- "skip" (and any prompt that casts the model as the narrator): a line or two of narration
  of the time passing, told by no one in the scene, and the planned events it lists.
- "summary", "scene_close": a short point-of-view summary with a "Key quotes" section.
- "ooc": a short, plain answer out of character, about what the player asked or said.
- a reply asked to go on from where it stopped (a continue): one more line of the character's.
- a new take of a reply (its prompt is the first take's with a note asking for take N afresh):
  the first take's reply with its opening moved on N - 1 places, so each take of a reply reads
  differently from the takes before it (as many as there are openings to pick from).
- "opening_time": when the story begins, from the plain words of its opening ("before dawn",
  "late autumn", "the third night of the blizzard"); nothing when it has none.
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
from core.llm.roles import without_notes
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
_QUESTION_LINES = [
    '"{Topic}? Fair question. I will tell you what I know, and it is less than you hope."',
    '"You want to know about {topic}. Sit down first; it is not a short answer."',
    '"Ask me about {topic} tomorrow, when there are fewer ears around."',
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
    '"Stay a while. It is quiet {at_place}."',
    '"Whatever happens next, I would rather face it with you than alone."',
    "*{name} waits, watching {user} for an answer.*",
]
_NARRATIONS = [
    "{Span} pass{es}. The light shifts {at_place}, and the small work of the day goes on.",
    "Time moves on: {span} of quiet, of chores done and words left for later.",
    "{Span} slip{s} by. Nothing much happens {at_place}, and that is its own kind of news.",
]
_GREETINGS = [
    '*{name} notices you and straightens up.* "There you are, {user}. I was starting to wonder '
    'if you would come at all."',
    '*{name} glances up.* "Oh! Hello, {user}. I did not hear you come in."',
    '*{name} offers a {trait} little nod.* "Welcome. Sit, if you like. We have time."',
]


_ENTRANCES = [
    '*{name} comes in out of the weather, shaking the wet from a sleeve.* "{user}. I heard there was '
    'company up here."',
    '*The door opens and {name} steps through, {trait} and unhurried.* "Don\'t let me interrupt. '
    'Or do; I came to be interrupted."',
]
ENTRANCE_MARK = "arrives in this scene"  # what a guest's entrance instruction says
_ASIDES = [
    '*{name} snorts softly.* "Don\'t look at me like that. You know I\'d have said the same."',
    '*{name} lifts a hand, {trait} as ever.* "Fine. But I get the last word later."',
]
FOLLOW_UP_MARK = "has just spoken to"  # what the instruction for the other character's short answer says
CONTINUE_MARK = "from where it stopped"  # what the instruction to go on with a reply says
# What a new take's prompt adds to the first take's (a regenerate's note): which take it is.
TAKE_NOTE = re.compile(r"\n*\(This is take (\d+) of [^\n]*?'s reply: write it afresh\.\)")
_OOC_QUESTIONS = [
    "Good question about {topic}. The story has not shown that yet; keep playing and watch for it.",
    "{Topic} is still open in the story, so it can go the way you play it.",
]
_OOC_REMARKS = [
    "Noted. I will bring {topic} into the story from here.",
    "Understood: {topic} it is, from the next reply on.",
]


_TITLES = frozenset("brother sister father mother captain doctor dr mr mrs ms miss lady lord sir master madam".split())


def short_name(name: str) -> str:
    """What a narrator calls a character after the first mention: "Tamsin" for "Brother Tamsin Vale"."""
    words = name.split()
    while len(words) > 1 and words[0].lower().rstrip(".") in _TITLES:
        words = words[1:]
    return words[0] if words else name


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
        if purpose == "opening_time":
            return json.dumps(_opening_time(messages))
        if response_schema is not None:
            return placeholder_instance(response_schema).model_dump_json()
        take, messages = _take_asked(messages)
        rng = random.Random(_conversation_seed(messages, purpose))
        sheet = CharacterSheet.from_messages(messages)
        if purpose in ("summary", "scene_close"):
            return _summary(sheet, messages)
        if role == "classifier":
            return "none"
        if purpose == "skip" or _casts_a_narrator(messages):
            return _narration(sheet, messages, rng)
        if messages and ENTRANCE_MARK in messages[-1]["content"]:
            return _fill(_pick(rng, _ENTRANCES, take), sheet, rng, topic="")
        if messages and FOLLOW_UP_MARK in messages[-1]["content"]:
            return _fill(_pick(rng, _ASIDES, take), sheet, rng, topic="")
        if purpose == "ooc":
            return _ooc_answer(messages, rng)
        if messages and CONTINUE_MARK in messages[-1]["content"]:
            return " " + _fill(rng.choice(_FOLLOW_UPS), sheet, rng, topic="")
        last_user = _last_user_line(messages)
        if purpose == "greeting" or not last_user:
            return _fill(_pick(rng, _GREETINGS, take), sheet, rng, topic="")
        return _in_character_reply(sheet, last_user, rng, _recent_replies(messages), take)


def _ooc_answer(messages: Sequence[ChatMessage], rng: random.Random) -> str:
    asked = messages[-1]["content"].rsplit("out of character:", 1)[-1].strip() if messages else ""
    topic = _topic_of(asked) or "that"
    templates = _OOC_QUESTIONS if asked.endswith("?") else _OOC_REMARKS
    return rng.choice(templates).format(topic=topic, Topic=topic[:1].upper() + topic[1:])


def _take_asked(messages: Sequence[ChatMessage]) -> tuple[int, list[ChatMessage]]:
    """Which take of a reply `messages` ask for (1: a first one), and the messages without the note
    that asks for it: the first take's, so every take of a reply starts from the same seed."""
    take = 1
    plain: list[ChatMessage] = []
    for message in messages:
        found = TAKE_NOTE.search(message["content"])
        if found is not None:
            take = int(found.group(1))
            message = {**message, "content": TAKE_NOTE.sub("", message["content"])}
        plain.append(message)
    return take, plain


def _pick(rng: random.Random, templates: Sequence[str], take: int) -> str:
    """The template the seed picks for a first take (as `rng.choice` does), moved on a place for
    each take after it: a new take never opens the way the takes before it did."""
    return templates[(rng.randrange(len(templates)) + take - 1) % len(templates)]


def _conversation_seed(messages: Sequence[ChatMessage], purpose: str) -> int:
    canonical = json.dumps(
        [purpose, [[m["role"], m["content"]] for m in messages]], ensure_ascii=False
    )
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:8], "big")


def _last_user_line(messages: Sequence[ChatMessage]) -> str:
    """The player's newest line: the last paragraph of the last user turn (narration and other
    characters' lines are folded in before it), without a leading "Name:"."""
    for message in reversed(messages):
        if message["role"] == "user" and message["content"].strip():
            last = without_notes(message["content"]).strip().split("\n\n")[-1]
            return re.sub(r"^[^:\n*\"]{1,60}:\s+", "", last).strip()
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


def _casts_a_narrator(messages: Sequence[ChatMessage]) -> bool:
    return any(m["role"] == "system" and m["content"].lstrip().startswith("You are the narrator") for m in messages)


def _recent_replies(messages: Sequence[ChatMessage], count: int = 3) -> str:
    """The model's last few replies, lower-cased words only: what the next reply should not repeat."""
    replies = [m["content"] for m in messages if m["role"] == "assistant" and m["content"].strip()]
    return " ".join(_words(text) for text in replies[-count:])


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text)).lower()


def _signature(template: str) -> str:
    """The first two words a template always writes, whatever fills it ("fair question", "looks up")."""
    return " ".join(_words(re.sub(r"\{\w+\}", " ", template)).split()[:2])


def _in_character_reply(sheet: CharacterSheet, last_user: str, rng: random.Random, recent: str, take: int = 1) -> str:
    """An action, a line about what the player said, a follow-up: none begun the way a recent reply
    put it; the action of a new take (`take` > 1) is not the one of a take before it."""
    topic = _topic_of(last_user)
    asked = last_user.rstrip().endswith("?")
    parts = []
    for templates in (_ACTIONS, _QUESTION_LINES if asked and topic else _TOPIC_LINES if topic else _PLAIN_LINES, _FOLLOW_UPS):
        fresh = [t for t in templates if f" {_signature(t)} " not in f" {recent} "] or templates
        parts.append(_fill(_pick(rng, fresh, take if templates is _ACTIONS else 1), sheet, rng, topic=topic))
    return " ".join(parts)


_PLACE = re.compile(
    r"\b(?:in|at|on|aboard|below|inside|near|by|beneath|under|across)\s+((?:the|a|an)\s+[A-Za-z'-]+(?:\s+[A-Z][A-Za-z'-]+)*"
    r"(?:\s+(?!of\b|and\b|to\b|for\b|with\b)[a-z][a-z'-]+)?)"
)


def _place_of(scenario: str) -> str:
    """A few words for where the scene is ("the Gullrock light", "the map room"), never the scenario itself; "" if none."""
    found = _PLACE.search(scenario)
    if found is None:
        return ""
    words = found.group(1).split()
    while len(words) > 2 and words[-1].lower() in _STOPWORDS:
        words.pop()
    return " ".join(words[:4])


def _at(place: str) -> str:
    return f"at {place}" if place else "here"


def _fill(template: str, sheet: CharacterSheet, rng: random.Random, *, topic: str) -> str:
    short_traits = [t for t in sheet.personality if len(t.split()) <= 2]  # "dry-humoured" reads well in a line; a clause does not
    trait = rng.choice(short_traits) if short_traits else "thoughtful"
    place = _place_of(sheet.scenario)
    return template.format(
        name=short_name(sheet.name),
        trait=trait.lower(),
        place=place or "the room",
        at_place=_at(place),
        user=sheet.user,
        topic=topic,
        Topic=topic[:1].upper() + topic[1:],
    )


_SPAN = re.compile(r"Time passes:\s*([^,\n]+?)(?:,| from|\n|$)", re.I)
_DUE = re.compile(r"^- ((?:At|On) [^:\n]*?\d{1,2}:\d{2} [AP]M): ([^\n]+)$", re.M)


def _narration(sheet: CharacterSheet, messages: Sequence[ChatMessage], rng: random.Random) -> str:
    """The narrator bridges a gap in time: no character acts, nobody speaks."""
    prompt = "\n".join(m["content"] for m in messages)
    found = _SPAN.search(prompt)
    span = found.group(1).strip() if found else "some time"
    plural = not re.match(r"^(an?|one|1)\b", span)
    scenario = next((value for key, value in _FIELD_LINE.findall(prompt) if key.lower() == "scenario"), "")
    text = rng.choice(_NARRATIONS).format(
        span=span, Span=span[:1].upper() + span[1:], at_place=_at(_place_of(scenario)),
        es="" if plural else "es", s="" if plural else "s",
    )
    for when, what in _DUE.findall(prompt):  # planned events the time passes: told as they happen
        text += f" {when}, {what[:1].lower() + what[1:].rstrip('.')}."
    return text


def _summary(sheet: CharacterSheet, messages: Sequence[ChatMessage]) -> str:
    spoken = [m for m in messages if m["role"] in ("user", "assistant") and m["content"].strip()]
    topics = [t for t in (_topic_of(m["content"]) for m in spoken if m["role"] == "user") if t]
    about = ", ".join(dict.fromkeys(topics[-3:])) or "small things"
    where = f" {_at(_place_of(sheet.scenario))}"
    quotes = [f'- "{_first_sentence(m["content"])}"' for m in spoken[-2:]]
    return (
        f"From {sheet.name}'s point of view: {sheet.user} and {sheet.name} talked{where} "
        f"about {about}. {sheet.name} will remember how it felt.\n\n"
        "Key quotes:\n" + ("\n".join(quotes) if quotes else "- (nothing memorable was said)")
    )


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip().replace("\n", " "), maxsplit=1)[0]
    return sentence[:160].replace('"', "'")


_PARTS_OF_DAY = (  # the first phrase found names the part of day
    ("before dawn", "before dawn"), ("dawn", "early morning"), ("sunrise", "early morning"),
    ("midnight", "late night"), ("small hours", "late night"), ("morning", "morning"), ("noon", "midday"),
    ("midday", "midday"), ("afternoon", "afternoon"), ("dusk", "evening"), ("sunset", "evening"),
    ("evening", "evening"), ("tonight", "night"), ("night", "night"),
)
_SEASONS = ("spring", "summer", "autumn", "winter")
_WINTRY = re.compile(r"\b(snow\w*|blizzard|frost\w*|ice)\b")


def _opening_time(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """When a story's opening says it begins, read from its words alone (the user message)."""
    text = " ".join(m["content"] for m in messages if m["role"] == "user").lower()
    answer: dict[str, str] = {}
    part = next((part for word, part in _PARTS_OF_DAY if re.search(rf"\b{word}\b", text)), None)
    if part:
        answer["part_of_day"] = part
    season = next((s for s in _SEASONS if re.search(rf"\b{s}\b", text)), "winter" if _WINTRY.search(text) else None)
    if season:
        early_or_late = re.search(rf"\b(early|late) {season}\b", text)
        answer["season"] = f"{early_or_late.group(1)} {season}" if early_or_late else season
    return answer
