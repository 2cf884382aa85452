"""A story's own note (at depth, never in memory), out-of-character lines (answered, never
recorded), a persona per story (and per line), engine ids kept apart from a player's, and a
regenerate that sees the world as it stood at the reply it replaces."""

from __future__ import annotations

import pytest

from core.errors import InvalidInputError, ReservedSourceIdError
from core.state import memory as memory_state
from tests.core.conftest import row_counts
from tests.core.story.conftest import GUEST, HOST, Plot, collect, prompt_text, settle, story_content


async def story(open_engine, name: str = "engine.sqlite3", **cast):
    plot = Plot()
    engine = await open_engine(plot.fake, name=name)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, **cast)
    return engine, plot, chat.chat_id


async def test_a_note_stands_at_depth_in_every_reply_prompt_and_nowhere_else(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    for n in range(4):
        await collect(engine.post_turn(chat, f"Line {n}.", f"${n}"))
    assert await engine.set_note(chat, "  Keep {{char}}'s tone hopeful.  ") == "Keep {{char}}'s tone hopeful."
    await collect(engine.post_turn(chat, "And now?", "$4"))
    await engine.close_scene(chat)
    await settle(engine, chat)

    messages = plot.fake.calls_for("narrate")[-1].messages
    holding = [i for i, m in enumerate(messages) if "[Author's note: Keep Wren Halloway's tone hopeful.]" in m["content"]]
    assert holding == [len(messages) - 5] and messages[holding[0]]["role"] == "user"  # four messages after it
    for call in plot.fake.calls:
        if call.purpose != "narrate" or call is not plot.fake.calls_for("narrate")[-1]:
            assert "hopeful" not in prompt_text(call), call.purpose
    assert await memory_state.search_memories(engine.db, chat, HOST, "hopeful") == []
    sections = {s.name: s.tokens for s in (await engine.context(chat)).sections}
    assert sections["note"] > 0 and await engine.note(chat) == "Keep {{char}}'s tone hopeful."

    await engine.set_note(chat, "")
    assert {s.name: s.tokens for s in (await engine.context(chat)).sections}["note"] == 0
    with pytest.raises(InvalidInputError):
        await engine.set_note(chat, "x" * 1001)


async def test_an_out_of_character_line_is_answered_once_and_never_enters_the_story(open_engine) -> None:
    engine, plot, chat = await story(open_engine, guest=GUEST)
    await collect(engine.post_turn(chat, "Hello.", "$1"))
    before = await row_counts(engine.db)
    updates = await collect(engine.post_turn(chat, "(( Is a storm tokOOCx coming later? ))", "$2"))
    assert [(u.kind, u.text) for u in updates] == [("ooc", "Out of the story: yes, the storm is coming.")]
    assert await row_counts(engine.db) == before  # nothing recorded
    [asked] = plot.fake.calls_for("ooc")
    assert asked.messages[-1]["content"].endswith("out of character: Is a storm tokOOCx coming later?")
    assert "Hello." in asked.messages[-1]["content"]  # the last lines the player saw
    assert plot.fake.calls_for("addressee") == []  # no routing, though it names a time

    await collect(engine.post_turn(chat, "Anyway.", "$3"))
    await engine.close_scene(chat)
    await settle(engine, chat)
    assert all("tokOOCx" not in prompt_text(c) and "storm is coming" not in prompt_text(c)
               for c in plot.fake.calls if c.purpose != "ooc")


async def test_a_story_keeps_its_persona_and_each_line_the_name_it_was_said_under(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await engine.set_persona("@p:hs", "Tobin", "a deckhand")
    await collect(engine.post_turn(chat, "I'm Tobin tokONEx.", "$1"))
    await engine.set_persona("@p:hs", "Mara", "a cartographer")  # the default, for new stories
    assert (await engine.persona("@p:hs", chat)).name == "Tobin"
    fresh = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await collect(engine.post_turn(fresh, "Hello.", "$x"))
    assert (await engine.persona("@p:hs", fresh)).name == "Mara"
    assert "User: Mara" in plot.fake.calls_for("narrate")[-1].messages[0]["content"]

    await engine.set_persona("@p:hs", "Tobin the Elder", "older now", chat_id=chat)
    assert (await engine.persona("@p:hs")).name == "Mara" and (await engine.persona("@p:hs", fresh)).name == "Mara"
    await collect(engine.post_turn(chat, "Years pass tokTWOx.", "$2"))
    await engine.close_scene(chat)
    await settle(engine, chat)
    transcript = plot.fake.calls_for("scene_close")[-1].messages[-1]["content"]
    assert "Tobin: I'm Tobin tokONEx." in transcript and "Tobin the Elder: Years pass tokTWOx." in transcript
    memories = sorted(m.text for m in await memory_state.recent_memories_for(engine.db, chat, "@p:hs", 10, kind="event"))
    assert [m.split(" said")[0] for m in memories] == ["Tobin", "Tobin the Elder"]
    exported = [(t.speaker_name, t.role) for t in (await engine.export_story(chat)).turns if t.role == "user"]
    assert exported == [("Tobin", "user"), ("Tobin the Elder", "user")]
    assert "Tobin the Elder's persona: older now" in plot.fake.calls_for("narrate")[-1].messages[0]["content"]


async def test_a_story_that_has_not_begun_takes_the_persona_set_before_its_first_line(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await engine.set_persona("@p:hs", "Tobin Reyes", "a young deckhand")
    await collect(engine.post_turn(chat, "Hello.", "$1"))
    assert (await engine.persona("@p:hs", chat)).description == "a young deckhand"


@pytest.mark.parametrize("source_id", ["greeting", "greeting#guest", "$1#reply", "$1#reply#follow-up", "$1#skip"])
async def test_the_engine_refuses_a_players_line_under_an_id_of_its_own(open_engine, source_id: str) -> None:
    engine, _, chat = await story(open_engine)
    before = await row_counts(engine.db)
    with pytest.raises(ReservedSourceIdError):
        await engine.receive_line(chat, "Hello.", source_id)
    with pytest.raises(ReservedSourceIdError):
        await collect(engine.post_turn(chat, "Hello.", source_id))
    assert await row_counts(engine.db) == before


async def test_a_regenerated_reply_sees_the_world_events_and_threads_as_they_stood(open_engine) -> None:
    live, reference = [await story(open_engine, name) for name in ("live.sqlite3", "reference.sqlite3")]
    engine, plot, chat = live
    plot.reply = "The festival tokOLDx is tomorrow!"
    await collect(engine.post_turn(chat, "Any news?", "$1"))
    await settle(engine, chat)  # the lifecycle reading plans the festival, due within the prompt's horizon
    await engine.close_scene(chat)  # its close opens a thread
    assert [t.title for t in await engine.list_threads(chat)] == ["Thread of tokOLDx"]
    assert [e.title for e in await engine.list_world_events(chat)] == ["Festival of tokOLDx"]

    plot.reply = "Nothing much."
    await collect(engine.regenerate(chat))
    regenerated = plot.fake.calls_for("narrate")[-1]
    assert "tokOLDx" not in prompt_text(regenerated)  # neither the event it planned nor the thread its close found

    other, other_plot, other_chat = reference
    other_plot.reply = "Nothing much."
    await collect(other.post_turn(other_chat, "Any news?", "$1"))
    first = other_plot.fake.calls_for("narrate")[-1]
    take_note = "\n\n(This is take 2 of Wren Halloway's reply: write it afresh.)"
    assert [m["content"].replace(take_note, "") for m in regenerated.messages] == [m["content"] for m in first.messages]
    await other.close_scene(other_chat)
    await settle(engine, chat)
    await settle(other, other_chat)
    assert await story_content(engine, chat) == await story_content(other, other_chat)
