"""The prompt for one character's reply, within a token budget, in a layout every template accepts.

Layout: what rarely changes first, what changes every turn last, so that consecutive turns
share the longest prefix and a model server's prefix cache keeps hitting (`docs/prompts.md`):

    system     main prompt (or the card's `system_prompt`, `{{original}}` = the main prompt)
               Character / Description / Personality / Scenario (the story's), persona (`User:`),
               who is present; example dialogue (`mes_example` blocks, while the dialogue
               leaves room); the speaker's scene summaries; what it remembers of the exchanges
               before the dialogue window; the open threads it knows of
    dialogue   the window (`core.services.prompt_window`: it moves in blocks, not every turn);
               user / assistant strictly alternating, starting with user: the speaker's own
               lines are `assistant`; the player's, other characters' and narration are folded,
               named, into the `user` turn they belong to
    last user  the player's line, then the story notes of this turn in brackets (story time
               and part of day, world events running or due, how the speaker feels about those
               present, lorebook entries it knows that the recent lines call up, memories the
               line brings back, meanwhile digests), then the card's
               `post_history_instructions` (and a regenerate's note)
    note       the story's own note (Author's Note), if it has one, folded into the dialogue a
               few messages from its end (`core.services.story_note`)

Budget (`tokens.estimate_tokens`, chars/4): the card and the player's line are always kept;
`TAIL_SHARE` of the rest is held for the notes; summaries, earlier memories and threads get
at most their share (`SECTION_SHARES`, whole items, most important first); the dialogue
window takes what is left; the example dialogue only what the window leaves (so it goes
first as the story grows).  `AssembledPrompt.section_tokens` / `section_budgets` report each
part (what `!context` shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.eventlog import Readable
from core.llm.base import ChatMessage
from core.llm.roles import NOTES_OPENING, alternating
from core.services import recall
from core.services.budget import CARD_SHARE, NOTE_SHARE, SECTION_SHARES, TAIL_SHARE, TURN_SHARE, scaled
from core.services.card_text import card_block_within, example_blocks, macro_values, post_history, present_block
from core.services.dialogue import Cast, join_names
from core.services.lorebook import lore_for_prompt
from core.services.macros import story_time
from core.services.prompt_memories import past_sections, without_what_the_window_shows
from core.services.prompt_window import clipped, dialogue_window, turn_cost
from core.services.relationships import prior_edges
from core.services.scenes import strip_key_quotes
from core.services.story_clock import time_now_line, when_phrase
from core.services.story_note import note_text, place_note
from core.services.tokens import (
    DEFAULT_CONTEXT_TOKENS,
    MESSAGE_OVERHEAD,
    each_within,
    ends_within,
    estimate_tokens,
    first_within,
    take_within,
)
from core.state import plans, world
from core.state import threads as thread_state
from core.state.edges import Edge
from core.state.memory import Memory
from core.state.plans import WorldEvent
from core.state.turns import Turn

DIALOGUE_TURNS = 40  # at the default budget (`budget.scaled`)
EVENTS_HORIZON = timedelta(days=3)  # planned world events this close are "due soon"
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


def _cost(items: Sequence[str]) -> int:
    return sum(estimate_tokens(x) + 1 for x in items)


def _edge_line(cast: Cast, edge: Edge) -> str:
    label = " (a player)" if cast.is_group else " (the player)"
    who = cast.name_of(edge.to_id) + (label if cast.is_player(edge.to_id) else "")
    line = f"- {who}: affinity {edge.affinity:+d}, trust {edge.trust:+d}"
    return line + (f"; {edge.summary}" if edge.summary else "")


def fold_lines(
    cast: Cast, speaker_id: str, lines: Sequence[tuple[str, str] | tuple[str, str, str | None]]
) -> list[ChatMessage]:
    """Dialogue lines (who, text[, the name it was said under]) as `speaker_id`'s prompt holds them:
    its own lines are `assistant`; everyone else's are folded into the `user` turn between, named,
    unless that turn holds only the words of the story's one player (narration goes in brackets;
    with several players, every line is named)."""
    messages: list[ChatMessage] = []
    group: list[tuple[str, str, str]] = []

    def flush() -> None:
        if not group:
            return
        if not cast.is_group and all(cast.is_player(who) for who, _, _ in group):
            messages.append({"role": "user", "content": "\n\n".join(text for _, text, _ in group)})
        else:
            named = [f"[Narration: {text}]" if who == NARRATOR else f"{name}: {text}" for who, text, name in group]
            messages.append({"role": "user", "content": "\n\n".join(named)})
        group.clear()

    for line in lines:
        who, text = line[0], line[1]
        if who == speaker_id:
            flush()
            messages.append({"role": "assistant", "content": text})
        else:
            group.append((who, text, (line[2] if len(line) > 2 else None) or cast.name_of(who)))
    flush()
    return messages


def _turn_line(turn: Turn) -> tuple[str, str, str | None]:
    return (NARRATOR if turn.role == "narration" else turn.speaker, turn.text, turn.speaker_name)


def finish_with_user(messages: list[ChatMessage], note: str, fallback: str, notes: str = "") -> list[ChatMessage]:
    """`messages` ending on a user turn that carries this turn's `notes`, then `note`
    (post-history instructions)."""
    if messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": fallback})
    tail = "\n\n".join(part for part in (notes, note) if part)
    if tail:
        last = messages[-1]
        messages[-1] = {"role": "user", "content": f"{last['content']}\n\n{tail}"}
    return messages


def memory_line(memory: Memory, now: datetime, text: str | None = None) -> str:
    return f"- ({when_phrase(memory.story_time, now)}) {memory.text if text is None else text}"


def section(title: str, lines: Sequence[str]) -> str:
    return title + "\n" + "\n".join(lines) if lines else ""


async def assemble_prompt(
    source: Readable,
    cast: Cast,
    speaker: world.Character,
    *,
    user_turn: Turn | None,
    excluding_turn: int | None = None,
    budget_tokens: int = DEFAULT_CONTEXT_TOKENS,
    take: int = 1,
    pending_line: str | None = None,
    pending_player: str | None = None,
    instruction: str = "",
    recall_text: str | None = None,
    opening: str = "",
) -> AssembledPrompt:
    """The messages for `speaker`'s reply to `user_turn` (None: an opening line, or with
    `pending_line` the next line of `pending_player` (the owner by default), as `!context` shows it).

    `source` may be a scratch transaction in which what a reply replaces was taken back: a
    regenerate's prompt is built on that story, so nothing the replaced reply caused is in view
    (`replying.ReplyWriter.write_reply`).  `excluding_turn` is the turn the story is read as it
    stood before: turns from it on, and what was recorded from it on that no rollback takes back
    (a meanwhile scene played after the replaced reply, its digest), are left out.  `take` > 1
    (a regenerate) adds a note after the dialogue asking for a fresh take, so swipes differ
    even with a deterministic model.  `instruction` (a guest's entrance, a continue) goes after
    the dialogue, before the card's post-history instructions.  `recall_text` is what memories
    are recalled for (the lines of a round; by default the line answered).  `opening` opens a
    dialogue that shows no earlier line (by default: the scene begins).
    """
    chat_id, who, now = cast.chat.chat_id, speaker.character_id, cast.chat.clock
    card = card_block_within(speaker, cast, int(CARD_SHARE * budget_tokens) * 4) + "\n" + present_block(cast, speaker)
    note = first_within(post_history(speaker, cast), int(NOTE_SHARE * budget_tokens))
    turn_tokens = int(TURN_SHARE * budget_tokens)
    if take > 1:
        note = (note + "\n" if note else "") + f"(This is take {take} of {speaker.name}'s reply: write it afresh.)"
    if instruction:
        note = instruction + ("\n" + note if note else "")
    story_note = note_text(speaker, cast)
    line = clipped(user_turn, turn_tokens) if user_turn is not None else None
    line_cost = turn_cost(line) if line else estimate_tokens(ends_within(pending_line or "", turn_tokens)) + 12
    free = max(0, budget_tokens - estimate_tokens(card) - estimate_tokens(note) - estimate_tokens(story_note)
               - 3 * MESSAGE_OVERHEAD - line_cost)
    budgets = {name: int(free * share) for name, share in SECTION_SHARES.items()}
    budgets["notes"] = int(free * TAIL_SHARE)

    # The stable part: what changes at a scene's close, a part's writing, a thread's change or a window move.
    past = await past_sections(source, chat_id, who, budgets, now, summaries=scaled(recall.SUMMARIES, budget_tokens),
                               recorded_before=excluding_turn)
    threads = await thread_state.open_threads_known_by(source, chat_id, who)
    thread_lines = take_within([f"- {t.title}: {t.summary}" if t.summary else f"- {t.title}" for t in threads],
                               budgets["threads"])
    held = sum(_cost(past.lines(name)) for name in ("story", "summaries", "scene"))
    window_budget = max(0, free - budgets["notes"] - budgets["earlier"] - held - _cost(thread_lines))
    window = await dialogue_window(
        source, chat_id, who, up_to_turn_id=excluding_turn - 1 if excluding_turn else None,
        budget=window_budget + (line_cost if line else 0), max_turns=scaled(DIALOGUE_TURNS, budget_tokens),
        turn_tokens=turn_tokens,
    )
    dialogue = list(window.turns)
    if user_turn is not None and not excluding_turn:  # a line answered late is answered in the present
        dialogue = [t for t in dialogue if t.turn_id != user_turn.turn_id] + [clipped(user_turn, turn_tokens)]
    window_budget += line_cost  # the player's line is in the window (or after it)
    past = without_what_the_window_shows(past, window.turns, now)
    earlier = await recall.earlier_memories(source, chat_id, who, window.first_turn_id if window.left_out else None,
                                            excluding_turn=excluding_turn, limit=scaled(recall.EARLIER_MEMORIES, budget_tokens))
    earlier_lines = list(reversed(take_within([memory_line(m, now) for m in reversed(earlier)], budgets["earlier"])))
    earlier = earlier[len(earlier) - len(earlier_lines):]  # those shown: the others are for recall to find
    window_cost = sum(turn_cost(t) for t in dialogue)
    spare = window_budget + budgets["earlier"] - _cost(earlier_lines) - window_cost
    # Examples only while the whole story fits: once lines are left out, dialogue outranks them.
    budgets["examples"] = 0 if window.left_out else max(0, min(budgets["examples"], spare))
    examples = take_within(example_blocks(speaker, cast), budgets["examples"])

    # The notes of this turn, after the player's line.
    time_line = time_now_line(now)
    events = await plans.world_events_in_view(source, chat_id, who, until=now + EVENTS_HORIZON)
    event_lines = take_within([_event_line(e, now) for e in events], budgets["notes"] // 3)
    edges = await prior_edges(source, chat_id, who, [*cast.player_ids, *cast.present_ids])  # a replaced reply's are taken back
    edge_lines = take_within([_edge_line(cast, e) for e in edges if e.updated_at is not None],  # never moved: nothing to say
                             budgets["notes"] // 4)
    query = recall_text or (user_turn.text if user_turn else (pending_line or ""))
    recalled = await recall.recalled_memories(
        source, chat_id, who, query, leave_out_turns={t.turn_id for t in dialogue},
        leave_out_memories={m.memory_id for m in earlier} | past.memory_ids(), excluding_turn=excluding_turn, now=now,
        known_texts={m.text for m in earlier} | past.texts(),
    )
    digests = await recall.digests_for_reply(
        source, chat_id, who, user_turn.turn_id if user_turn else None, created_before=excluding_turn
    )
    room = budgets["notes"] - estimate_tokens(time_line) - _cost(event_lines) - _cost(edge_lines)
    scanned = [t.text for t in dialogue] + ([pending_line] if pending_line else [])
    lore = await lore_for_prompt(source, chat_id, who, scanned, token_budget=max(0, room // 3),
                                 macros=macro_values(speaker, cast))
    lore_lines = [f"- {text}" for text in lore]
    room -= _cost(lore_lines)
    digest_lines = take_within([f"- {d.text}" for d in reversed(digests)], max(0, room // 2))
    # What the line brings back: at most half the notes, which no cache holds (they change every turn).
    memory_lines = each_within([memory_line(m, now, strip_key_quotes(m.text)) for m in recalled],
                               max(0, min(room - _cost(digest_lines), budgets["notes"] // 2)))

    system = "\n\n".join(part for part in [
        card,
        section(f"Example dialogue (how {speaker.name} speaks; not part of the story):",
                [f"<example>\n{block}\n</example>" for block in examples]),
        section(f"{speaker.name}'s story so far, in its own words:", past.lines("story")),
        section(f"{speaker.name}'s own memories of earlier scenes:", past.lines("summaries")),
        section(f"{speaker.name}'s own account of this scene so far (its earlier lines are no longer shown):",
                past.lines("scene")),
        section(f"Earlier in this story ({speaker.name} remembers it; these lines are no longer shown):",
                earlier_lines),
        section(f"Open threads {speaker.name} knows of:", thread_lines),
    ] if part)
    players = [p.name for p in cast.present_players]
    learned = join_names(players) + (" has" if len(players) == 1 else " have")
    notes = "\n".join(part for part in [
        time_line,
        section("Happening now or due soon:", event_lines),
        section(f"What {speaker.name} knows of what was just mentioned (lore):", lore_lines),
        section(f"How {speaker.name} feels about those present:", edge_lines),
        section(f"What {speaker.name} recalls now:", memory_lines),
        section(f"Meanwhile, off-screen ({speaker.name} was there; {learned} just learned of it):",
                list(reversed(digest_lines))),
    ] if part)
    notes = f"{NOTES_OPENING.lstrip()}{speaker.name}, not part of the dialogue:\n{notes}]"

    report = AssembledPrompt([], budget_tokens, section_budgets=budgets)
    report.section_tokens = {
        "card": estimate_tokens(card),
        "examples": _cost(examples),
        "story": _cost(past.lines("story")),
        "summaries": _cost(past.lines("summaries")),
        "scene": _cost(past.lines("scene")),
        "earlier": _cost(earlier_lines),
        "threads": _cost(thread_lines),
        "time": estimate_tokens(time_line) + 12,  # and the notes' brackets
        "events": _cost(event_lines),
        "edges": _cost(edge_lines),
        "lore": _cost(lore_lines),
        "memories": _cost(memory_lines),
        "digests": _cost(digest_lines),
        "post_history": estimate_tokens(note),
        "note": estimate_tokens(story_note),
    }
    report.section_items = {
        "card": 1, "examples": len(examples), "story": len(past.story), "summaries": len(past.summaries),
        "scene": len(past.scene), "earlier": len(earlier_lines),
        "threads": len(thread_lines), "time": 1, "events": len(event_lines), "edges": len(edge_lines), "lore": len(lore_lines),
        "memories": len(memory_lines), "digests": len(digest_lines), "post_history": int(bool(note)),
        "note": int(bool(story_note)),
    }
    chosen = [_turn_line(t) for t in dialogue]
    report.section_items["dialogue"] = report.dialogue_turns = len(chosen)
    report.dropped_turns = window.left_out
    if pending_line is not None:
        chosen.append((pending_player or cast.player.owner, ends_within(pending_line, turn_tokens), None))
    history = fold_lines(cast, who, chosen)
    report.section_tokens["dialogue"] = sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD for m in history)
    opening = "[Earlier lines of the story are left out.]" if window.left_out else (
        opening or f"[The scene begins. Write {speaker.name}'s opening message.]")
    messages = alternating([{"role": "system", "content": system}, *history], opening=opening)
    report.messages = place_note(finish_with_user(messages, note, f"[{speaker.name} goes on.]", notes), story_note)
    return report


def _event_line(event: WorldEvent, now: datetime) -> str:
    what = event.title + (f": {event.description}" if event.description else "")
    if event.status == "started":
        return f"- Happening now: {what}"
    if event.due_at is not None and event.due_at <= now:
        return f"- Due already: {what}"
    assert event.due_at is not None
    return f"- Due {due_phrase(event.due_at, now)}: {what}"


def due_phrase(due: datetime, now: datetime) -> str:
    """When a planned event is due, as the notes say it: "at 7:00 AM", "tomorrow at 7:00 AM"."""
    at = story_time(due).rsplit(", ", 1)[-1]
    if due.date() == now.date():
        return f"at {at}"
    if due.date() == now.date() + timedelta(days=1):
        return f"tomorrow at {at}"
    return f"on {story_time(due)}"
