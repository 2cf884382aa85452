"""The prompt for one character's reply, within a token budget, in a layout every template accepts.

Layout (stable first, so a model server's prefix cache keeps hitting; `docs/prompts.md`):

    system     main prompt (or the card's `system_prompt`, `{{original}}` = the main prompt)
               Character / Description / Personality / Scenario, the player's persona (`User:`)
               example dialogue (`mes_example` blocks; dropped first when over budget)
               who is present; how the speaker feels about them; its scene summaries
               -- what changes each turn --
               recalled memories, meanwhile digests, the story time now
    dialogue   user / assistant strictly alternating, starting with user: the speaker's own
               lines are `assistant`; the player's, other characters' and narration are folded,
               named, into the `user` turn they belong to
    last user  ends with the card's `post_history_instructions` (and a regenerate's note)

Budget (`tokens.estimate_tokens`, chars/4): the card and the player's line are always kept;
digests, summaries and memories each get at most a share of the rest (`SECTION_SHARES`,
whole items, most important first); the example dialogue gets its share only from what the
last `MIN_DIALOGUE_TURNS` turns leave (so it is dropped first); the dialogue takes what is
left, newest turns first.  `AssembledPrompt.section_tokens` / `section_budgets` report each part
(what `!context` shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from core.eventlog import USER, Readable
from core.llm.base import ChatMessage
from core.llm.roles import alternating
from core.services import recall
from core.services.card_text import card_block, example_blocks, post_history
from core.services.dialogue import Cast, recent_dialogue
from core.services.macros import story_time
from core.services.relationships import prior_edges
from core.services.tokens import MESSAGE_OVERHEAD, estimate_tokens
from core.state import world
from core.state.edges import Edge
from core.state.turns import Turn

DEFAULT_BUDGET_TOKENS = 6000
DIALOGUE_TURNS = 40
MIN_DIALOGUE_TURNS = 6  # recent turns that outrank the example dialogue
SECTION_SHARES = {"examples": 0.15, "digests": 0.10, "summaries": 0.15, "memories": 0.20}
NARRATOR = "narrator"


@dataclass
class AssembledPrompt:
    messages: list[ChatMessage]
    budget_tokens: int
    section_tokens: dict[str, int] = field(default_factory=dict)
    section_items: dict[str, int] = field(default_factory=dict)  # lines (or turns) kept per section
    section_budgets: dict[str, int] = field(default_factory=dict)  # the most each budgeted section may use
    dialogue_turns: int = 0
    dropped_turns: int = 0

    @property
    def total_tokens(self) -> int:
        return sum(self.section_tokens.values())


def take_within(items: Sequence[str], budget: int) -> list[str]:
    """As many of `items` (most important first) as fit in `budget` tokens, whole."""
    kept, used = [], 0
    for item in items:
        cost = estimate_tokens(item) + 1
        if used + cost > budget:
            break
        kept.append(item)
        used += cost
    return kept


def _cost(items: Sequence[str]) -> int:
    return sum(estimate_tokens(x) + 1 for x in items)


def _edge_line(cast: Cast, edge: Edge) -> str:
    who = f"{cast.player.name} (the player)" if edge.to_id == USER else cast.name_of(edge.to_id)
    line = f"- {who}: affinity {edge.affinity:+d}, trust {edge.trust:+d}"
    return line + (f"; {edge.summary}" if edge.summary else "")


def fold_lines(cast: Cast, speaker_id: str, lines: Sequence[tuple[str, str]]) -> list[ChatMessage]:
    """Dialogue lines (who, text) as `speaker_id`'s prompt holds them: its own lines are
    `assistant`; everyone else's are folded into the `user` turn between, named, unless that
    turn holds only the player's words (narration goes in brackets)."""
    messages: list[ChatMessage] = []
    group: list[tuple[str, str]] = []

    def flush() -> None:
        if not group:
            return
        if all(who == USER for who, _ in group):
            messages.append({"role": "user", "content": "\n\n".join(text for _, text in group)})
        else:
            named = [f"[Narration: {text}]" if who == NARRATOR else f"{cast.name_of(who)}: {text}" for who, text in group]
            messages.append({"role": "user", "content": "\n\n".join(named)})
        group.clear()

    for who, text in lines:
        if who == speaker_id:
            flush()
            messages.append({"role": "assistant", "content": text})
        else:
            group.append((who, text))
    flush()
    return messages


def _turn_line(turn: Turn) -> tuple[str, str]:
    return (NARRATOR if turn.role == "narration" else turn.speaker, turn.text)


def finish_with_user(messages: list[ChatMessage], note: str, fallback: str) -> list[ChatMessage]:
    """`messages` ending on a user turn that carries `note` (post-history instructions)."""
    if messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": fallback})
    if note:
        last = messages[-1]
        messages[-1] = {"role": "user", "content": f"{last['content']}\n\n{note}"}
    return messages


def present_line(cast: Cast, speaker: world.Character) -> str:
    others = [c.name for c in cast.characters if c.character_id != speaker.character_id]
    return "Present: " + ", ".join([*others, f"{cast.player.name} (the player)"]) + "."


async def assemble_prompt(
    source: Readable,
    cast: Cast,
    speaker: world.Character,
    *,
    user_turn: Turn | None,
    excluding_turn: int | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    take: int = 1,
    pending_line: str | None = None,
) -> AssembledPrompt:
    """The messages for `speaker`'s reply to `user_turn` (None: an opening line, or with
    `pending_line` the player's next line, as `!context` shows it).

    `excluding_turn` is the reply a regenerate replaces: it and everything it caused
    (memories, edge changes) are left out, as if it never happened, and so is all that
    was recorded after it (a meanwhile scene, its digest, a scene's summaries).  `take` > 1
    (a regenerate) adds a note after the dialogue asking for a fresh take, so swipes differ
    even with a deterministic model.
    """
    chat_id = cast.chat.chat_id
    who = speaker.character_id
    up_to = excluding_turn - 1 if excluding_turn else None
    dialogue = [t for t in await recent_dialogue(source, chat_id, limit=DIALOGUE_TURNS, up_to_turn_id=up_to, witness=who)
                if t.text.strip()]
    if user_turn is not None and not excluding_turn:  # a line answered late is answered in the present
        dialogue = [t for t in dialogue if t.turn_id != user_turn.turn_id] + [user_turn]

    card = card_block(speaker, cast) + "\n" + present_line(cast, speaker)
    note = post_history(speaker, cast)
    if take > 1:
        note = (note + "\n" if note else "") + f"(This is take {take} of {speaker.name}'s reply: write it afresh.)"
    now = f"Story time now: {story_time(cast.chat.clock)}."
    edges = await prior_edges(source, chat_id, who, [USER, *cast.present_ids], excluding_turn=excluding_turn)
    edge_lines = [_edge_line(cast, e) for e in edges]
    summaries = await recall.pov_summaries(source, chat_id, who, recorded_before=excluding_turn)
    memories = await recall.memories_for_prompt(
        source, chat_id, who, user_turn.text if user_turn else (pending_line or ""),
        shown_turn_ids={t.turn_id for t in dialogue}, excluding_turn=excluding_turn,
    )
    digests = await recall.digests_for_reply(
        source, chat_id, who, user_turn.turn_id if user_turn else None, created_before=excluding_turn
    )

    last_line = estimate_tokens(dialogue[-1].text) + 8 if dialogue else 0  # + a name
    fixed = (estimate_tokens(card) + estimate_tokens(now) + estimate_tokens(note) + _cost(edge_lines)
             + 3 * MESSAGE_OVERHEAD + last_line)
    free = max(0, budget_tokens - fixed)
    budgets = {name: int(free * share) for name, share in SECTION_SHARES.items()}
    digest_lines = take_within([f"- {d.text}" for d in reversed(digests)], budgets["digests"])
    summary_lines = take_within([f"- {m.text}" for m in reversed(summaries)], budgets["summaries"])
    memory_lines = take_within(
        [f"- ({m.story_time:%b %d, %H:%M}) {m.text}" for m in reversed(memories)], budgets["memories"]
    )
    # Examples go first: they get what the recent dialogue and the other sections leave.
    recent = sum(estimate_tokens(t.text) + 8 + MESSAGE_OVERHEAD for t in dialogue[-MIN_DIALOGUE_TURNS:-1])
    spare = free - recent - _cost(digest_lines) - _cost(summary_lines) - _cost(memory_lines)
    budgets["examples"] = max(0, min(budgets["examples"], spare))
    examples = take_within(example_blocks(speaker, cast), budgets["examples"])
    sections = [
        (f"Example dialogue (how {speaker.name} speaks; not part of the story):",
         [f"<example>\n{block}\n</example>" for block in examples]),
        (f"How {speaker.name} feels about those present:", edge_lines),
        (f"{speaker.name}'s own memories of earlier scenes:", list(reversed(summary_lines))),
        (f"What {speaker.name} remembers:", list(reversed(memory_lines))),
        (f"Meanwhile, off-screen ({speaker.name} was there; {cast.player.name} has just learned of it):",
         list(reversed(digest_lines))),
    ]
    system = "\n\n".join([card] + [title + "\n" + "\n".join(lines) for title, lines in sections if lines] + [now])
    report = AssembledPrompt([], budget_tokens, section_budgets=budgets)
    report.section_tokens = {
        "card": estimate_tokens(card) + estimate_tokens(now),
        "examples": _cost(examples),
        "edges": _cost(edge_lines),
        "summaries": _cost(summary_lines),
        "memories": _cost(memory_lines),
        "digests": _cost(digest_lines),
        "post_history": estimate_tokens(note),
    }
    report.section_items = {
        "card": 1, "examples": len(examples), "edges": len(edge_lines), "summaries": len(summary_lines),
        "memories": len(memory_lines), "digests": len(digest_lines), "post_history": int(bool(note)),
    }
    remaining = budget_tokens - estimate_tokens(system) - estimate_tokens(note) - 2 * MESSAGE_OVERHEAD
    chosen: list[tuple[str, str]] = []
    for index, turn in enumerate(reversed(dialogue)):
        cost = estimate_tokens(turn.text) + 8 + MESSAGE_OVERHEAD  # a name, and a message of its own at worst
        if index > 0 and cost > remaining:
            break
        chosen.append(_turn_line(turn))
        remaining -= cost
    chosen.reverse()
    report.section_items["dialogue"] = report.dialogue_turns = len(chosen)
    report.dropped_turns = len(dialogue) - len(chosen)
    if pending_line is not None:
        chosen.append((USER, pending_line))
    history = fold_lines(cast, who, chosen)
    report.section_tokens["dialogue"] = sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD for m in history)
    cut = report.dropped_turns > 0 or len(dialogue) >= DIALOGUE_TURNS
    opening = "[Earlier lines of the story are left out.]" if cut else (
        f"[The scene begins. Write {speaker.name}'s opening message.]")
    messages = alternating([{"role": "system", "content": system}, *history], opening=opening)
    report.messages = finish_with_user(messages, note, f"[{speaker.name} goes on.]")
    return report
