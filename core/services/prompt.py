"""Prompt assembly for one character's reply, within a token budget.

The system message holds the character card (the `Character:`, `Personality:`,
`Scenario:` lines the demo model reads come first), then what this character
knows: its feelings toward those present (`relationships.prior_edges`), its own
scene summaries (`recall.pov_summaries`), its witnessed memories
(`recall.memories_for_prompt`) and the meanwhile digests it took part in.  The
recent dialogue follows as chat messages, ending with the player's line.

Budget (`tokens.estimate_tokens`, chars/4): the card and the player's line are
always kept; digests, summaries and memories each get at most a share of the
rest (`SECTION_SHARES`, most important items first); the dialogue takes what is
left, newest turns first.  `AssembledPrompt.section_tokens` reports each part's
estimate (what `!context` shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.eventlog import USER, Readable
from core.llm.base import ChatMessage
from core.services import recall
from core.services.dialogue import PLAYER_NAME, Cast, recent_dialogue
from core.services.relationships import prior_edges
from core.services.tokens import MESSAGE_OVERHEAD, estimate_tokens
from core.state import world
from core.state.edges import Edge
from core.state.turns import Turn

DEFAULT_BUDGET_TOKENS = 6000
DIALOGUE_TURNS = 40
SECTION_SHARES = {"digests": 0.10, "summaries": 0.15, "memories": 0.20}


def fill_placeholders(text: str, character: world.Character, user: str = "you") -> str:
    return text.replace("{{char}}", character.name).replace("{{user}}", user)


def system_prompt(character: world.Character) -> str:
    """The character card as the narrative model sees it (lines the demo model reads too)."""
    lines = [
        f"You are {character.name}, a character in an ongoing roleplay with the user. Stay in character;"
        " write only your own words and actions, in a few short paragraphs at most.",
        f"Character: {character.name}",
    ]
    if character.personality:
        lines.append(f"Personality: {fill_placeholders(character.personality, character)}")
    if character.scenario:
        lines.append(f"Scenario: {fill_placeholders(character.scenario, character)}")
    if character.description:
        lines.append(f"Description: {fill_placeholders(character.description, character)}")
    if character.system_prompt:
        lines.append(fill_placeholders(character.system_prompt, character))
    return "\n".join(lines)


@dataclass
class AssembledPrompt:
    messages: list[ChatMessage]
    budget_tokens: int
    section_tokens: dict[str, int] = field(default_factory=dict)
    section_items: dict[str, int] = field(default_factory=dict)  # lines (or turns) kept per section
    dialogue_turns: int = 0
    dropped_turns: int = 0

    @property
    def total_tokens(self) -> int:
        return sum(self.section_tokens.values())


def _take(lines: Sequence[str], budget: int) -> list[str]:
    """As many of `lines` (most important first) as fit in `budget` tokens."""
    kept, used = [], 0
    for line in lines:
        cost = estimate_tokens(line) + 1
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return kept


def _edge_line(cast: Cast, edge: Edge) -> str:
    who = f"{PLAYER_NAME} (the player)" if edge.to_id == USER else cast.name_of(edge.to_id)
    line = f"- {who}: affinity {edge.affinity:+d}, trust {edge.trust:+d}"
    return line + (f"; {edge.summary}" if edge.summary else "")


def _dialogue_message(cast: Cast, speaker: world.Character, turn: Turn) -> ChatMessage:
    if turn.role == "user":
        return {"role": "user", "content": turn.text}
    if turn.role == "narration":
        return {"role": "user", "content": f"[Narration] {turn.text}"}
    if turn.speaker == speaker.character_id:
        return {"role": "assistant", "content": turn.text}
    return {"role": "user", "content": f"[{cast.name_of(turn.speaker)}] {turn.text}"}


async def assemble_prompt(
    source: Readable,
    cast: Cast,
    speaker: world.Character,
    *,
    user_turn: Turn | None,
    excluding_turn: int | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    take: int = 1,
) -> AssembledPrompt:
    """The messages for `speaker`'s reply to `user_turn` (None: an opening line).

    `excluding_turn` is the reply a regenerate replaces: it and everything it caused
    (memories, edge changes) are left out, as if it never happened, and so is all that
    was recorded after it (a meanwhile scene, its digest, a scene's summaries).  `take` > 1
    (a regenerate) adds a line asking for a fresh take, so swipes differ even with
    a deterministic model.
    """
    chat_id = cast.chat.chat_id
    who = speaker.character_id
    up_to = excluding_turn - 1 if excluding_turn else None
    dialogue = [t for t in await recent_dialogue(source, chat_id, limit=DIALOGUE_TURNS, up_to_turn_id=up_to, witness=who)
                if t.text.strip()]
    if user_turn is not None and not excluding_turn:  # a line answered late is answered in the present
        dialogue = [t for t in dialogue if t.turn_id != user_turn.turn_id] + [user_turn]
    others = [c for c in cast.characters if c.character_id != who]

    card = system_prompt(speaker)
    if take > 1:
        card += f"\n(Take {take} of this reply: write it afresh.)"
    if others:
        card += "\nAlso present: " + ", ".join(c.name for c in others) + f", and {PLAYER_NAME.lower()} (the player)."
    edges = await prior_edges(source, chat_id, who, [USER, *cast.present_ids], excluding_turn=excluding_turn)
    edge_lines = [_edge_line(cast, e) for e in edges]
    summaries = await recall.pov_summaries(source, chat_id, who, recorded_before=excluding_turn)
    memories = await recall.memories_for_prompt(
        source, chat_id, who, user_turn.text if user_turn else "",
        shown_turn_ids={t.turn_id for t in dialogue}, excluding_turn=excluding_turn,
    )
    digests = await recall.digests_for_reply(
        source, chat_id, who, user_turn.turn_id if user_turn else None, created_before=excluding_turn
    )

    fixed = estimate_tokens(card) + sum(estimate_tokens(x) for x in edge_lines) + 2 * MESSAGE_OVERHEAD
    last_message = _dialogue_message(cast, speaker, dialogue[-1]) if dialogue else None
    fixed += estimate_tokens(last_message["content"]) if last_message else 0
    free = max(0, budget_tokens - fixed)
    digest_lines = _take([f"- {d.text}" for d in reversed(digests)], int(free * SECTION_SHARES["digests"]))
    summary_lines = _take([f"- {m.text}" for m in reversed(summaries)], int(free * SECTION_SHARES["summaries"]))
    memory_lines = _take(
        [f"- ({m.story_time:%b %d, %H:%M}) {m.text}" for m in reversed(memories)], int(free * SECTION_SHARES["memories"])
    )
    sections = [
        (f"How {speaker.name} feels about those present:", edge_lines),
        (f"{speaker.name}'s own memories of earlier scenes:", list(reversed(summary_lines))),
        (f"What {speaker.name} remembers:", list(reversed(memory_lines))),
        (f"Meanwhile, off-screen ({speaker.name} was there; the player has just learned of it):",
         list(reversed(digest_lines))),
    ]
    system = "\n\n".join([card] + [title + "\n" + "\n".join(lines) for title, lines in sections if lines])
    report = AssembledPrompt([], budget_tokens)
    report.section_tokens = {
        "card": estimate_tokens(card),
        "edges": sum(estimate_tokens(x) + 1 for x in edge_lines),
        "summaries": sum(estimate_tokens(x) + 1 for x in summary_lines),
        "memories": sum(estimate_tokens(x) + 1 for x in memory_lines),
        "digests": sum(estimate_tokens(x) + 1 for x in digest_lines),
    }
    report.section_items = {
        "card": 1, "edges": len(edge_lines), "summaries": len(summary_lines),
        "memories": len(memory_lines), "digests": len(digest_lines),
    }
    remaining = budget_tokens - estimate_tokens(system) - MESSAGE_OVERHEAD
    chosen: list[ChatMessage] = []
    for index, turn in enumerate(reversed(dialogue)):
        message = _dialogue_message(cast, speaker, turn)
        cost = estimate_tokens(message["content"]) + MESSAGE_OVERHEAD
        if index > 0 and cost > remaining:
            break
        chosen.append(message)
        remaining -= cost
    chosen.reverse()
    report.messages = [{"role": "system", "content": system}, *chosen]
    report.section_tokens["dialogue"] = sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD for m in chosen)
    report.section_items["dialogue"] = report.dialogue_turns = len(chosen)
    report.dropped_turns = len(dialogue) - len(chosen)
    return report
