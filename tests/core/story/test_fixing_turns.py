"""Fixing a bad turn the way roleplayers do: edit the latest line, take lines back, rewind,
show another take, continue a reply.  Each is checked against a second engine that only ever
produced what is shown: the story (turns, memories, edges, threads, world events, scenes,
digests, clock) is the same, and no prompt or memory search holds the words taken back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import NoSuchTakeError, NothingToContinueError, NothingToRewindError, NotLatestLineError
from core.eventlog import replay
from core.state import memory as memory_state
from tests.core.conftest import dump_projections
from tests.core.story.conftest import GUEST, HOST, Plot, collect, prompt_text, settle, story_content


async def two_engines(open_engine, guest: bool = False):
    live, reference = Plot(), Plot()
    engines = []
    for plot, name in ((live, "live.sqlite3"), (reference, "reference.sqlite3")):
        engine = await open_engine(plot.fake, name=name)
        chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST if guest else None)
        engines.append((engine, plot, chat.chat_id))
    return engines


async def say(engine, plot: Plot, chat_id: str, text: str, source: str, reply: str, **intent) -> list:
    plot.reply, plot.intent = reply, intent
    updates = await collect(engine.post_turn(chat_id, text, source))
    await settle(engine, chat_id)
    plot.intent = {}
    return updates


async def same_story(live, reference) -> None:
    (engine, _, chat_id), (other, _, other_id) = live, reference
    await settle(engine, chat_id)
    await settle(other, other_id)
    assert await story_content(engine, chat_id) == await story_content(other, other_id)
    before = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == before


def prompts_since(plot: Plot, index: int) -> str:
    return "\n".join(prompt_text(call) for call in plot.fake.calls[index:])


async def test_an_edited_line_is_the_only_one_the_story_holds_and_gets_a_new_reply(open_engine) -> None:
    live, reference = await two_engines(open_engine)
    engine, plot, chat = live
    await say(engine, plot, chat, "Hello tokAx.", "$1", "Hi tokBx.")
    await engine.receive_line(chat, "Thank you, is the festival tokOLDx on?", "$2")
    await say(engine, plot, chat, "Thank you, is the festival tokOLDx on?", "$2", "Festival tokCx, tomorrow!")
    await engine.line_answered(chat, "$2")
    await engine.close_scene(chat)  # a summary and a thread from the old exchange
    assert [t.title for t in await engine.list_threads(chat)] == ["Thread of tokCx"]

    calls = len(plot.fake.calls)
    rewound = await engine.edit_line(chat, "$2", "Thank you, is the market tokNEWx open?")
    owed = [(o.source_id, o.text) for o in await engine.owed_lines()]
    assert owed == [("$2", "Thank you, is the market tokNEWx open?")]  # owed its answer again, as it now reads
    assert len(rewound.turn_ids) == 1 and rewound.line_sources == ()
    await say(engine, plot, chat, "(what the adapter passes again)", "$2", "Market tokDx is open.")
    assert "tokOLDx" not in prompts_since(plot, calls) and "tokCx" not in prompts_since(plot, calls)
    for who in ("@p:hs", HOST):
        assert await memory_state.search_memories(engine.db, chat, who, "tokOLDx") == []

    other, other_plot, other_chat = reference
    await say(other, other_plot, other_chat, "Hello tokAx.", "$1", "Hi tokBx.")
    await say(other, other_plot, other_chat, "Thank you, is the market tokNEWx open?", "$2", "Market tokDx is open.")
    await other.close_scene(other_chat)
    await same_story(live, reference)
    assert [t.title for t in await engine.list_threads(chat)] == ["Thread of tokDx"]


async def test_only_the_latest_line_is_edited_or_taken_back(open_engine) -> None:
    [(engine, plot, chat), _] = await two_engines(open_engine)
    await say(engine, plot, chat, "One.", "$1", "A.")
    await say(engine, plot, chat, "Two.", "$2", "B.")
    before = await dump_projections(engine.db)
    with pytest.raises(NotLatestLineError):
        await engine.edit_line(chat, "$1", "Uno.")
    with pytest.raises(NotLatestLineError):
        await engine.take_back_line(chat, "$1")
    assert await dump_projections(engine.db) == before


async def test_taking_back_the_latest_line_leaves_the_story_as_before_it(open_engine) -> None:
    live, reference = await two_engines(open_engine, guest=True)
    for engine, plot, chat in (live, reference):
        await say(engine, plot, chat, "Hello tokAx.", "$1", "Hi tokBx.")
        await collect(engine.meanwhile(chat, HOST, GUEST, "the tide"))
    engine, plot, chat = live
    start = await engine.chat_clock(chat)
    # The line is told the meanwhile digest, plans a festival, closes the scene and sleeps eight hours.
    await say(engine, plot, chat, "Thank you; goodnight tokGONEx, the festival?", "$2", "Festival tokCx! Sleep.",
              close_scene=True, time="skip", amount="8h")
    assert await engine.list_world_events(chat) and await engine.list_threads(chat)
    calls = len(plot.fake.calls)

    rewound = await engine.take_back_line(chat, "$2")

    assert rewound.line_sources == ("$2",) and len(rewound.turn_ids) == 3  # the line, the reply, the narration
    assert rewound.scene_reopened and rewound.clock == start
    await same_story(live, reference)
    await say(engine, plot, chat, "Good evening.", "$3", "Evening.")  # the digest is told again, with this line
    other, other_plot, other_chat = reference
    await say(other, other_plot, other_chat, "Good evening.", "$3", "Evening.")
    await same_story(live, reference)
    assert "tokGONEx" not in prompts_since(plot, calls)
    assert await memory_state.search_memories(engine.db, chat, "@p:hs", "tokGONEx") == []


async def test_rewind_takes_back_the_skip_a_line_asked_for_first_then_the_exchange(open_engine) -> None:
    live, reference = await two_engines(open_engine)
    for engine, plot, chat in (live, reference):
        await say(engine, plot, chat, "Hello.", "$1", "Hi tokAx.")
    engine, plot, chat = live
    start = await engine.chat_clock(chat)
    await say(engine, plot, chat, "Goodnight, Wren.", "$2", "Goodnight tokBx.", close_scene=True, time="skip",
              amount="8h")
    assert await engine.chat_clock(chat) == start + timedelta(hours=8)

    moves = await engine.rewind(chat)  # the answer stays; the close and the night are taken back
    assert moves.steps == 1 and moves.line_sources == () and moves.scene_reopened and moves.clock == start
    other, other_plot, other_chat = reference
    await say(other, other_plot, other_chat, "Goodnight, Wren.", "$2", "Goodnight tokBx.")
    await same_story(live, reference)

    both = await engine.rewind(chat, 5)  # the two exchanges, then nothing is left to take back
    assert both.steps == 2 and both.line_sources == ("$2", "$1")
    with pytest.raises(NothingToRewindError):
        await engine.rewind(chat)
    assert (await story_content(engine, chat))["turns"] == []
    assert (await story_content(engine, chat))["memories"] == []


async def test_showing_another_take_leaves_the_story_as_if_only_it_was_written(open_engine) -> None:
    live, reference = await two_engines(open_engine)
    for engine, plot, chat in (live, reference):
        await say(engine, plot, chat, "Hello.", "$1", "Hi.")
    engine, plot, chat = live
    await say(engine, plot, chat, "Thank you! The festival?", "$2", "Festival tokONEx at noon.")
    await engine.close_scene(chat)
    for reply in ("Festival tokTWOx, maybe.", "No festival tokTHREEx."):
        plot.reply = reply
        await collect(engine.regenerate(chat))
        await settle(engine, chat)
    takes = await engine.takes(chat)
    assert (takes.shown, takes.count) == (3, 3)

    shown = await engine.show_take(chat, 1)
    assert shown.text == "Festival tokONEx at noon." and (await engine.takes(chat)).shown == 1
    other, other_plot, other_chat = reference
    await say(other, other_plot, other_chat, "Thank you! The festival?", "$2", "Festival tokONEx at noon.")
    await other.close_scene(other_chat)
    await same_story(live, reference)
    assert [e.title for e in await engine.list_world_events(chat)] == ["Festival of tokONEx"]
    assert [t.title for t in await engine.list_threads(chat)] == ["Thread of tokONEx"]

    calls = len(plot.fake.calls)
    await say(engine, plot, chat, "And then?", "$3", "Then we dance.")
    assert "tokTWOx" not in prompts_since(plot, calls) and "tokTHREEx" not in prompts_since(plot, calls)
    with pytest.raises(NoSuchTakeError):
        await engine.show_take(chat, 4)


async def test_a_continued_reply_grows_in_place_and_is_remembered_whole(open_engine) -> None:
    live, reference = await two_engines(open_engine)
    engine, plot, chat = live
    await say(engine, plot, chat, "Tell me about the festival.", "$1", "The festival tokAx")
    reply_id = (await engine.takes(chat)).turn_id
    plot.reply = "starts tomorrow at noon."
    updates = await collect(engine.continue_reply(chat))
    assert updates[-1].text == "The festival tokAx starts tomorrow at noon." and updates[-1].turn_id == reply_id
    assert all(u.text.startswith("The festival tokAx") for u in updates)
    continued = plot.fake.calls_for("narrate")[-1]
    assert continued.messages[-2] == {"role": "assistant", "content": "The festival tokAx"}
    assert "Continue Wren Halloway's last message from where it stopped" in continued.messages[-1]["content"]

    other, other_plot, other_chat = reference
    await say(other, other_plot, other_chat, "Tell me about the festival.", "$1",
              "The festival tokAx starts tomorrow at noon.")
    await same_story(live, reference)

    await say(engine, plot, chat, "I'll come.", "$2", "Good.")
    await engine.rewind(chat)
    await engine.rewind(chat)
    with pytest.raises(NothingToContinueError):
        await collect(engine.continue_reply(chat))
