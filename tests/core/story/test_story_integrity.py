"""Story integrity: a regenerate leaves the story as if only the new reply had happened, and a
summary the model failed to write is written later, per character, never lost.

Every model request is recorded by the fake; "as if only the new reply had happened" is
checked against a second engine that only ever produced the new reply.
"""

from __future__ import annotations

import pytest

from core.llm import FakeLLM
from core.llm.base import LLMError
from core.services import recall
from core.services.addressee import AddresseeDecision
from core.services.dialogue import recent_dialogue
from core.state import memory as memory_state
from core.state import threads as thread_state
from core.state import turns as turn_state
from core.state import world
from tests.core.conftest import row_counts
from tests.core.story.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, collect, open_scene_id, settle

OLD = "The lantern is cursed, whispered Wren."
NEW = "The harbour lies quiet tonight, said Wren."


class Story:
    """A fake model whose narration is whatever `reply` currently says, and whose other
    answers are computed from what they are shown (so two engines shown the same story agree)."""

    def __init__(self) -> None:
        self.reply = NEW
        self.fake = FakeLLM(routes={
            "narrate": lambda _messages: self.reply,
            "addressee": AddresseeDecision(speaker=HOST, confidence="high"),
            "scene_close": self.summary,
            "threads": self.threads,
            "meanwhile": "We argue about the lamp oil.",
            "lifecycle": {},
        })

    @staticmethod
    def summary(messages) -> str:
        who = HOST_NAME if f"You are {HOST_NAME}" in messages[0]["content"] else GUEST_NAME
        return f"{who} remembers: {messages[-1]['content'].splitlines()[-1]}"

    @staticmethod
    def threads(messages) -> dict:
        scene = messages[-1]["content"]
        title = "The cursed lantern" if "cursed" in scene else "The quiet harbour"
        return {"open": [{"title": title, "summary": "It came up."}]}


async def story_tables(engine, chat_id: str) -> dict:
    """What a later turn, `!memory` or `!threads` can see, by content (ids, and the order ids
    give, aside)."""
    witnesses = ["@p:hs", HOST, GUEST]
    memories = {
        who: sorted((m.text, m.kind, m.pov, m.witnesses, m.significance)
                    for m in await memory_state.recent_memories_for(engine.db, chat_id, who, 1000))
        for who in witnesses
    }
    threads = [(t.title, t.summary, t.status) for t in await thread_state.list_threads(engine.db, chat_id)]
    return {"memories": memories, "threads": threads}


def prompt_text(call) -> str:
    return "\n".join(m["content"] for m in call.messages)


async def test_regenerate_after_a_scene_close_rolls_back_and_rederives_the_summaries(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake, name="regenerated.sqlite3")
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    story.reply = OLD
    await collect(engine.post_turn(chat.chat_id, "What about the lantern?", "$1"))
    closed = await engine.close_scene(chat.chat_id)
    assert closed is not None and "cursed" in closed.summaries[HOST_NAME]

    story.reply = NEW
    await collect(engine.regenerate(chat.chat_id))
    await settle(engine, chat.chat_id)
    await collect(engine.post_turn(chat.chat_id, "Anything else?", "$2"))

    next_prompt = prompt_text(story.fake.calls_for("narrate")[-1])
    assert "cursed" not in next_prompt and "quiet tonight" in next_prompt
    assert await engine.search_memory(chat.chat_id, HOST, "cursed") == []
    assert await engine.search_memory(chat.chat_id, "you", "cursed") == []

    only_new = Story()
    reference = await open_engine(only_new.fake, name="reference.sqlite3")
    other = await reference.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(reference.post_turn(other.chat_id, "What about the lantern?", "$1"))
    await reference.close_scene(other.chat_id)
    await collect(reference.post_turn(other.chat_id, "Anything else?", "$2"))
    assert await story_tables(engine, chat.chat_id) == await story_tables(reference, other.chat_id)


async def test_a_regenerated_reply_sees_the_story_as_it_stood_at_the_replaced_one(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake, name="regenerated.sqlite3")
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(engine.post_turn(chat.chat_id, "Good evening.", "$1"))
    story.reply = OLD
    await collect(engine.post_turn(chat.chat_id, "What about the lantern?", "$2"))
    await collect(engine.meanwhile(chat.chat_id, HOST, GUEST, "a quarrel about lamp oil"))

    story.reply = NEW
    await collect(engine.regenerate(chat.chat_id))
    regenerate_prompt = prompt_text(story.fake.calls_for("narrate")[-1])
    assert "lamp oil" not in regenerate_prompt and "Meanwhile" not in regenerate_prompt
    assert "What about the lantern?" in regenerate_prompt

    # The digest is still owed to the player, and told on the next turn.
    updates = await collect(engine.post_turn(chat.chat_id, "And then?", "$3"))
    assert [u.kind for u in updates][0] == "digest"

    only_new = Story()
    reference = await open_engine(only_new.fake, name="reference.sqlite3")
    other = await reference.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(reference.post_turn(other.chat_id, "Good evening.", "$1"))
    await collect(reference.post_turn(other.chat_id, "What about the lantern?", "$2"))
    await collect(reference.meanwhile(other.chat_id, HOST, GUEST, "a quarrel about lamp oil"))
    await collect(reference.post_turn(other.chat_id, "And then?", "$3"))
    assert await story_tables(engine, chat.chat_id) == await story_tables(reference, other.chat_id)
    assert prompt_text(story.fake.calls_for("narrate")[-1]) == prompt_text(only_new.fake.calls_for("narrate")[-1])


@pytest.mark.parametrize("retry", ["next turn", "scene close command"])
async def test_a_failed_summary_is_retried_per_character_and_never_lost(open_engine, retry: str) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(engine.post_turn(chat.chat_id, "What about the lantern?", "$1"))
    scene_id = await open_scene_id(engine, chat.chat_id)

    def guest_fails(messages):
        if f"You are {GUEST_NAME}" in messages[0]["content"]:
            raise LLMError("timeout", purpose="scene_close")
        return Story.summary(messages)

    story.fake.set_route("scene_close", guest_fails)
    story.fake.set_route("addressee", AddresseeDecision(speaker=HOST, confidence="high", close_scene=True))
    updates = await collect(engine.post_turn(chat.chat_id, "Let us end the scene here.", "$2"))
    assert [u.kind for u in updates if u.done] == ["reply", "scene"]
    await settle(engine, chat.chat_id)
    written = {m.pov for m in await memory_state.recent_memories_for(engine.db, chat.chat_id, "@p:hs", 100, kind="summary")}
    assert written == {HOST}  # the one that worked is kept; the guest's is owed

    story.fake.set_route("scene_close", Story.summary)
    story.fake.set_route("addressee", AddresseeDecision(speaker=HOST, confidence="high"))
    host_calls = len([c for c in story.fake.calls_for("scene_close") if f"You are {HOST_NAME}" in c.messages[0]["content"]])
    if retry == "next turn":
        await collect(engine.post_turn(chat.chat_id, "Hello again.", "$3"))
        await settle(engine, chat.chat_id)
    else:
        result = await engine.close_scene(chat.chat_id)
        assert result is not None and result.scene_id == scene_id and set(result.summaries) == {GUEST_NAME}
    summaries = await memory_state.recent_memories_for(engine.db, chat.chat_id, "@p:hs", 100, kind="summary")
    assert sorted(m.pov for m in summaries) == [GUEST, HOST] and {m.scene_id for m in summaries} == {scene_id}
    again = len([c for c in story.fake.calls_for("scene_close") if f"You are {HOST_NAME}" in c.messages[0]["content"]])
    assert again == host_calls  # only the missing one was asked for
    assert [t.title for t in await thread_state.list_threads(engine.db, chat.chat_id)] == ["The quiet harbour"]


async def test_an_explicit_close_whose_summary_fails_is_retried_by_the_next_close(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    scene_id = await open_scene_id(engine, chat.chat_id)
    story.fake.set_error("scene_close", LLMError("timeout", purpose="scene_close"))
    with pytest.raises(LLMError):
        await engine.close_scene(chat.chat_id)
    story.fake.set_error("scene_close", None)
    result = await engine.close_scene(chat.chat_id)
    assert result is not None and result.scene_id == scene_id and set(result.summaries) == {HOST_NAME}
    assert await engine.close_scene(chat.chat_id) is None


async def test_reposting_a_line_that_closed_the_scene_answers_once(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    story.fake.set_route("addressee", AddresseeDecision(speaker=HOST, confidence="high", close_scene=True))
    first = await collect(engine.post_turn(chat.chat_id, "Let us end the scene here.", "$2"))
    await settle(engine, chat.chat_id)
    before, routed = await row_counts(engine.db), len(story.fake.calls_for("addressee"))

    again = await collect(engine.post_turn(chat.chat_id, "Let us end the scene here.", "$2"))

    assert [(u.kind, u.text, u.done) for u in again] == [(u.kind, u.text, u.done) for u in first if u.done]
    assert await row_counts(engine.db) == before and len(story.fake.calls_for("addressee")) == routed
    assert await open_scene_id(engine, chat.chat_id) is None


async def test_an_old_failed_line_is_answered_in_the_present(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    story.fake.set_error("narrate", LLMError("timeout", purpose="narrate"))
    with pytest.raises(LLMError):
        await collect(engine.post_turn(chat.chat_id, "Is the lamp lit?", "$1"))
    story.fake.set_error("narrate", None)
    story.reply = "The kettle sings."
    await collect(engine.post_turn(chat.chat_id, "Shall we have tea?", "$2"))

    story.reply = "Yes, the lamp is lit."
    updates = await collect(engine.post_turn(chat.chat_id, "Is the lamp lit?", "$1"))

    assert updates[-1].text == "Yes, the lamp is lit."
    messages = story.fake.calls_for("narrate")[-1].messages
    assert messages[-1]["role"] == "user"  # the line is the last thing said, before this turn's notes
    assert messages[-1]["content"].startswith("Is the lamp lit?\n\n[Story notes for Wren Halloway")
    dialogue = [m["content"] for m in messages[1:]]
    assert dialogue.index("Shall we have tea?") < dialogue.index("The kettle sings.") < len(dialogue) - 1
    assert sum("Is the lamp lit?" in m for m in dialogue) == 1
    assert "Shall we have tea?" not in messages[-1]["content"]
    shown = [t.text for t in await turn_state.recent_turns(engine.db, chat.chat_id, 10)]
    assert shown[-1] == "Yes, the lamp is lit."


async def test_a_guest_added_later_sees_only_the_lines_said_in_its_presence(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    story.reply = "Only you and I know where the key is."
    await collect(engine.post_turn(chat.chat_id, "Where did you hide the key?", "$1"))
    await world.set_guest(engine.db, chat.chat_id, GUEST)
    story.fake.set_route("addressee", AddresseeDecision(speaker=GUEST, confidence="high"))
    story.reply = "Captain's here."
    await collect(engine.post_turn(chat.chat_id, "Welcome aboard, Captain.", "$2"))

    guest_prompt = prompt_text(story.fake.calls_for("narrate")[-1])
    assert "Welcome aboard, Captain." in guest_prompt
    assert "hide the key" not in guest_prompt and "where the key is" not in guest_prompt
    host_dialogue = await recent_dialogue(engine.db, chat.chat_id, limit=10, witness=HOST)
    assert [t.text for t in host_dialogue][:2] == ["Where did you hide the key?", "Only you and I know where the key is."]


async def test_a_regenerated_reply_is_remembered_in_story_order(open_engine) -> None:
    async def played(name: str, regenerate: bool) -> list[str]:
        story = Story()
        engine = await open_engine(story.fake, name=name)
        chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
        story.reply = OLD if regenerate else NEW
        await collect(engine.post_turn(chat.chat_id, "What about the lantern?", "$1"))
        await collect(engine.meanwhile(chat.chat_id, HOST, GUEST, "a quarrel about lamp oil"))
        if regenerate:
            story.reply = NEW
            await collect(engine.regenerate(chat.chat_id))
        return [m.text for m in await recall.recalled_memories(engine.db, chat.chat_id, HOST, "lamp")]

    assert await played("regenerated.sqlite3", True) == await played("reference.sqlite3", False)
