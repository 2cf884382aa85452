"""Story-room commands that act on the story itself: time, scenes, threads, plans, memory, status,
and the story's standing `!note`.

Each parses its arguments (durations and times with core.timeparse, characters by
id or name), calls the engine, and answers with a notice. Bad arguments raise
CommandError, which the registry turns into the reason plus the usage line; the
engine's typed errors become a short message, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TypeVar

from adapter.matrix.handlers.commands import CommandError, CommandResult, Invocation, cast_first, command_list, find_character
from adapter.matrix.outgoing import SendMessage, txn_id_for
from adapter.matrix.render import collapsed_blocks
from adapter.matrix.room_types import STORY_ROOMS
from adapter.matrix.store import MemoryList, memory_list, set_memory_list
from core import DURATION_EXAMPLES, TIME_EXAMPLES, parse_duration, parse_story_time, render_messages
from core.engine import CharacterInfo
from core.errors import LLMError, MemoryNotFoundError, RpbotError

_Result = TypeVar("_Result")


def story_time(value: datetime) -> str:
    return value.strftime("%A %d %B %Y, %H:%M").replace(" 0", " ")


def chat_id_of(inv: Invocation) -> str:
    assert inv.meta.chat_id is not None
    return inv.meta.chat_id


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's typed errors become a CommandError (said with the usage line); a model that
    did not answer is left to `handle_command`, which says how to try again."""
    try:
        yield
    except LLMError:
        raise
    except RpbotError as exc:
        raise CommandError(str(exc)) from exc


async def engine_call(inv: Invocation, call: Awaitable[_Result]) -> _Result:
    """Await an engine call under `engine_errors`."""
    with engine_errors():
        return await call


COMMANDS, command = command_list()


@command("skip", "!skip <duration>", "let time pass, e.g. `!skip 2h`", STORY_ROOMS)
async def _skip(inv: Invocation) -> list[CommandResult]:
    duration = parse_duration(inv.args)
    if duration is None:
        what = f"`{inv.args}` is not a duration" if inv.args else "Say how long"
        raise CommandError(f"{what}. A duration looks like {DURATION_EXAMPLES}.")
    result = await engine_call(inv, inv.ctx.engine.skip(chat_id_of(inv), duration))
    closed = "The scene closes. " if result.scene_closed else ""
    return inv.reply(f"*{closed}Time passes… it is now {story_time(result.clock)}.*\n\n{result.narration}")


@command("jump", "!jump <time>", "jump to a moment, e.g. `!jump tomorrow 9am`", STORY_ROOMS)
async def _jump(inv: Invocation) -> list[CommandResult]:
    if not inv.args:
        raise CommandError(f"Say when. A time looks like {TIME_EXAMPLES}.")
    now = await engine_call(inv, inv.ctx.engine.chat_clock(chat_id_of(inv)))
    when = parse_story_time(inv.args, now)
    if when is None:
        raise CommandError(f"`{inv.args}` is not a time I can read. A time looks like {TIME_EXAMPLES}.")
    if when <= now:
        raise CommandError(f"{story_time(when)} is not after the story's clock ({story_time(now)}).")
    result = await engine_call(inv, inv.ctx.engine.jump(chat_id_of(inv), when))
    return inv.reply(f"*It is now {story_time(result.clock)}.*\n\n{result.narration}")


@command("scene", "!scene close", "close the current scene (each character keeps its own summary)", STORY_ROOMS)
async def _scene(inv: Invocation) -> list[CommandResult]:
    if inv.args.lower() != "close":
        raise CommandError("`!scene` only knows `close`.")
    result = await engine_call(inv, inv.ctx.engine.close_scene(chat_id_of(inv)))
    if result is None:
        return inv.reply("No scene is open right now.")
    names = list(result.summaries)
    if not names:
        return inv.reply("*The scene closes.*")
    if len(names) == 1:
        return inv.reply(f"*The scene closes.* {names[0]} will remember it in their own way.")
    return inv.reply(f"*The scene closes.* {and_join(names)} will each remember it in their own way.")


@command("threads", "!threads", "the plot threads so far", STORY_ROOMS)
async def _threads(inv: Invocation) -> list[CommandResult]:
    if inv.args:
        raise CommandError("`!threads` takes no arguments.")
    threads = await engine_call(inv, inv.ctx.engine.list_threads(chat_id_of(inv)))
    if not threads:
        return inv.reply("No plot threads yet.")
    lines = ["**Plot threads:**", ""]
    for thread in threads:
        mark = "open" if thread.status == "open" else f"closed {story_time(thread.closed_at)}" if thread.closed_at else "closed"
        lines.append(f"- **{thread.title}** ({mark}): {thread.summary}")
    return inv.reply("\n".join(lines))


@command("events", "!events", "planned and running world events", STORY_ROOMS)
async def _events(inv: Invocation) -> list[CommandResult]:
    if inv.args:
        raise CommandError("`!events` takes no arguments.")
    events = await engine_call(inv, inv.ctx.engine.list_world_events(chat_id_of(inv)))
    if not events:
        return inv.reply("Nothing is planned. Plan something with `!plan <what> at <when>`.")
    lines = ["**World events:**", ""]
    for event in events:
        due = f", due {story_time(event.due_at)}" if event.due_at else ""
        lines.append(f"- **{event.title}** ({event.status}{due})")
    return inv.reply("\n".join(lines))


@command("plan", "!plan <what> at <when>", "plan a world event, e.g. `!plan the harvest fair at saturday noon`", STORY_ROOMS)
async def _plan(inv: Invocation) -> list[CommandResult]:
    what, separator, when_text = inv.args.rpartition(" at ")
    if not separator or not what.strip() or not when_text.strip():
        raise CommandError("Say what and when, separated by ` at `.")
    now = await engine_call(inv, inv.ctx.engine.chat_clock(chat_id_of(inv)))
    when = parse_story_time(when_text, now)
    if when is None:
        raise CommandError(f"`{when_text}` is not a time I can read. A time looks like {TIME_EXAMPLES}.")
    event = await engine_call(inv, inv.ctx.engine.plan_event(chat_id_of(inv), what.strip(), when))
    return inv.reply(f"Planned: **{event.title}**, {story_time(when)}.")


@command("meanwhile", "!meanwhile <character> <character> [premise]", "a scene between two characters, without you", STORY_ROOMS)
async def _meanwhile(inv: Invocation) -> list[CommandResult]:
    words = inv.args.split()
    if len(words) < 2:
        raise CommandError("Name two characters.")
    cast = await engine_call(inv, inv.ctx.engine.cast(chat_id_of(inv)))
    characters = cast_first(cast, await inv.ctx.engine.list_characters(player=inv.sender))
    first, second = find_character(characters, words[0]), find_character(characters, words[1])
    if first.character_id == second.character_id:
        raise CommandError("A meanwhile scene needs two different characters.")
    premise = " ".join(words[2:])
    with engine_errors():
        async for _ in inv.ctx.engine.meanwhile(chat_id_of(inv), first.character_id, second.character_id, premise):
            pass  # the player was not there: they hear of it on their next turn
    return inv.reply(f"*Meanwhile, {first.name} and {second.name} meet somewhere you are not.* You will hear of it on your next turn.")


@command(
    "memory", "!memory [character] [query]",
    "what a character (the story's host unless you name one) remembers, numbered: the latest, or by words or "
    "by time (`!memory yesterday`, `!memory the first thing`)", STORY_ROOMS,
)
async def _memory(inv: Invocation) -> list[CommandResult]:
    who, _, rest = inv.args.strip().partition(" ")
    cast = await engine_call(inv, inv.ctx.engine.cast(chat_id_of(inv)))
    named = _cast_member(cast, who) if who else None
    if who.lower() in ("you", "me"):
        character_id, name, query = "you", "You", rest
    elif named is not None and (rest.strip() or not inv.args.strip().count(" ")):
        character_id, name, query = named.character_id, named.name, rest
    else:  # no name first: the whole line is the query, about the host's memory
        host = cast[0]
        character_id, name, query = host.character_id, host.name, inv.args
    query = query.strip()
    if query:
        memories = await engine_call(inv, inv.ctx.engine.search_memory(chat_id_of(inv), character_id, query, player=inv.sender))
    else:
        memories = await engine_call(inv, inv.ctx.engine.recent_memories(chat_id_of(inv), character_id, player=inv.sender))
    verb = "remember" if character_id == "you" else "remembers"
    if not memories:
        return inv.reply(f"{name} {verb} nothing about “{query}”." if query else f"{name} {verb} nothing yet.")
    await set_memory_list(inv.ctx.store, MemoryList(inv.meta.room_id, inv.sender, chat_id_of(inv), character_id, name,
                                                    tuple(m.memory_id for m in memories)))
    lines = [f"**{name} {verb}:**", ""]
    lines += [f"{n}. " + (f"{m.when[:1].upper() + m.when[1:]}: {m.text}" if m.when else f"{story_time(m.story_time)}: {m.text}")
              for n, m in enumerate(memories, start=1)]
    lines += ["", "To forget one: `!forget <number>`." if character_id == "you"
              else f"To make {name} forget one: `!forget <number>`."]
    return inv.reply("\n".join(lines))


@command("forget", "!forget <number>", "the character forgets that memory of the last `!memory` list (others who "
         "were there keep it)", STORY_ROOMS)
async def _forget(inv: Invocation) -> list[CommandResult]:
    if not inv.args.strip().isdigit() or int(inv.args) < 1:
        raise CommandError("Say which memory, by its number in the last `!memory` list.")
    shown = await memory_list(inv.ctx.store, inv.meta.room_id, inv.sender)
    if shown is None or shown.chat_id != chat_id_of(inv):
        raise CommandError("Show the memories first with `!memory`, then forget one by its number.")
    number = int(inv.args)
    if number > len(shown.memory_ids):
        count = len(shown.memory_ids)
        raise CommandError(f"The last `!memory` list has {count} {'memory' if count == 1 else 'memories'}: "
                           f"pick a number from 1 to {count}.")
    you = shown.holder == "you"
    with engine_errors():
        try:
            forgotten = await inv.ctx.engine.forget_memory(chat_id_of(inv), shown.holder, shown.memory_ids[number - 1],
                                                           player=inv.sender)
        except MemoryNotFoundError:
            return inv.reply(f"{'You have' if you else shown.holder_name + ' has'} already forgotten memory {number}.")
    who = "You no longer remember" if you else f"{shown.holder_name} no longer remembers"
    return inv.reply(f"{who}: “{forgotten.text}”")


def _cast_member(cast: list[CharacterInfo], word: str) -> CharacterInfo | None:
    try:
        return find_character(cast, word)
    except CommandError:
        return None


def and_join(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@command("status", "!status", "the story's clock, scene, threads, size and players", STORY_ROOMS)
async def _status(inv: Invocation) -> list[CommandResult]:
    status = await engine_call(inv, inv.ctx.engine.status(chat_id_of(inv), player=inv.sender))
    names = list(status.characters) or [status.host_name, *([status.guest_name] if status.guest_name else [])]
    cast = and_join(names)
    you_play = f"**{status.persona_name}**" + (f": {status.persona_description}" if status.persona_description else "")
    failures = ", ".join(f"{purpose} {count}" for purpose, count in sorted(status.parse_failures.items()))
    together = [f"- Players: {and_join(list(status.players))}"] if len(status.players) > 1 else []
    return inv.reply(
        "\n".join(
            [
                f"**{status.title}**" + ("" if all(name in status.title for name in names) else f", with {cast}"),
                "",
                f"- You play: {you_play} (change it with `!persona name: description`)",
                *together,
                f"- Story time: {story_time(status.clock)}",
                f"- Scene: {'open' if status.scene_open else 'none open'}",
                f"- Turns: {status.turns}, memories: {status.memories}",
                f"- Open threads: {status.open_threads}, upcoming events: {status.upcoming_events}",
                f"- Unusable model answers since the bot started: {failures or 'none'}",
            ]
        )
    )


CONTEXT_LABELS = {
    "card": "character card", "examples": "example dialogue", "story": "the story so far, in its own words",
    "summaries": "memories of earlier scenes", "scene": "its account of this scene so far",
    "earlier": "memories of lines no longer shown", "threads": "open threads", "time": "story time",
    "events": "world events", "edges": "feelings", "lore": "lore", "memories": "memories this line brings back",
    "digests": "off-screen news", "post_history": "the card's closing instruction", "dialogue": "dialogue",
    "note": "the story's note (`!note`)",
}


@command("context", "!context [full]", "what the next prompt holds and the tokens each part uses; `full`: the exact prompt", STORY_ROOMS)
async def _context(inv: Invocation) -> list[CommandResult]:
    if inv.args.strip().lower() == "full":
        return await _full_prompt(inv)
    if inv.args.strip():
        raise CommandError(f"`{inv.args.strip()}` is not a `!context` option.")
    report = await engine_call(inv, inv.ctx.engine.context(chat_id_of(inv)))
    used = sum(section.tokens for section in report.sections)
    lines = [f"**Next prompt for {report.speaker_name}:** {used} of {report.budget_tokens} tokens", ""]
    lines += [f"- {CONTEXT_LABELS.get(section.name, section.name)}: {section.tokens} tokens"
              + (f" ({section.items} {'item' if section.items == 1 else 'items'})" if section.items else "")
              for section in report.sections]
    return inv.reply("\n".join(lines))


async def _full_prompt(inv: Invocation) -> list[CommandResult]:
    prompt = await engine_call(inv, inv.ctx.engine.next_prompt(chat_id_of(inv), player=inv.sender))
    stops = ", ".join(json.dumps(s) for s in prompt.stop) or "none"
    text = f"max_tokens: {prompt.max_tokens}; stop: {stops}\n\n" + render_messages(prompt.messages)
    summary = (f"Next prompt for {prompt.speaker_name}: {len(prompt.messages)} messages, "
               f"about {prompt.tokens} of {prompt.budget_tokens} tokens")
    return [
        SendMessage(inv.meta.room_id, content, txn_id_for(inv.source_event_id, f"context:{index}"))
        for index, content in enumerate(collapsed_blocks(summary, text))
    ]


# --- fixing a turn --------------------------------------------------------------------


@command("note", "!note [text]", "the story's standing note for the characters (an Author's Note, never part of "
         "memory): `!note` shows it, `!note <text>` sets it, `!note clear` removes it", STORY_ROOMS)
async def _note(inv: Invocation) -> list[CommandResult]:
    chat_id = chat_id_of(inv)
    if not inv.args.strip():
        note = await engine_call(inv, inv.ctx.engine.note(chat_id))
        if not note:
            return inv.reply("This story has no note. Set one with `!note <text>`: a standing instruction, "
                             "e.g. `!note Keep the tone hopeful; Wren hides her fear.`")
        return inv.reply(f"**The story's note:** {note}\n\n`!note <text>` changes it, `!note clear` removes it.")
    if inv.args.strip().lower() == "clear":
        await engine_call(inv, inv.ctx.engine.set_note(chat_id, ""))
        return inv.reply("The story's note is removed.")
    note = await engine_call(inv, inv.ctx.engine.set_note(chat_id, inv.args))
    return inv.reply(f"**The story's note is set:** {note}\n\nIt stands in every reply from now on (never in "
                     "memory); `!context` shows its cost.")
