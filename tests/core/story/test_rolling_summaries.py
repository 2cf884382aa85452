"""A long open scene is summarized in parts as it goes, per character present, in the background;
a scene close summarizes the parts and the lines after them; a regenerate retracts the parts
made from the reply it replaces, so the story is as if only the new reply had happened."""

from __future__ import annotations

import asyncio
import re
import time

from core.engine import Engine
from core.llm import FakeLLM
from core.services import rolling_summaries
from core.services.addressee import AddresseeDecision
from core.services.rollback import undo_turn
from core.state import summaries, world
from core.state import turns as turn_state
from tests.core.story.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, collect, open_scene_id


def said(messages) -> list[str]:
    """The numbered lines ("Line 7") a request's stretch or scene holds."""
    return [part.split()[0].rstrip(":.,") for part in messages[-1]["content"].replace("\n", " ").split("Line ")[1:]]


def part(messages) -> str:
    """A part that names the first and last line of its stretch (or of the two accounts it rolls up)."""
    who = HOST_NAME if f"You are {HOST_NAME}" in messages[0]["content"] else GUEST_NAME
    content = messages[-1]["content"]
    if "The earlier account:" in content:  # a roll-up of two parts
        numbers = re.findall(r"noted lines (\d+) to (\d+)", content)
        return f"{who} noted lines {numbers[0][0]} to {numbers[-1][1]}."
    numbers = said(messages)
    curse = " Something was cursed." if "cursed" in content else ""
    return (f"{who} noted lines {numbers[0]} to {numbers[-1]}." if numbers else f"{who} noted nothing.") + curse


class Story:
    def __init__(self) -> None:
        self.reply = "Aye."
        self.fake = FakeLLM({
            "narrate": lambda _m: self.reply, "scene_part": part,
            "scene_close": lambda m: "I remember the whole evening.", "threads": {}, "lifecycle": {},
            "addressee": AddresseeDecision(speaker=HOST, confidence="high"),
        })


async def play(engine: Engine, chat_id: str, lines: range) -> None:
    for n in lines:
        await collect(engine.post_turn(chat_id, f"Line {n}: the tide and the lamp.", f"${n}"))
    await engine.pipeline.summary_jobs.settle(chat_id)


async def test_a_long_open_scene_is_summarized_in_parts_by_each_character_present(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)).chat_id
    await play(engine, chat, range(40))
    scene = await open_scene_id(engine, chat)
    assert scene is not None
    for who, name in ((HOST, HOST_NAME), (GUEST, GUEST_NAME)):
        parts = await summaries.scene_parts(engine.db, scene, who)
        assert parts and all(p.pov == who and set(p.witnesses) == {who, "@p:hs"} for p in parts)
        assert parts[0].text == f"{name} noted lines 0 to {parts[0].text.split()[-1].rstrip('.')}."
        turns = await turn_state.scene_turns(engine.db, scene)
        assert parts[0].covers_from_turn == turns[0].turn_id
        for earlier, later in zip(parts, parts[1:], strict=False):  # one stretch after another, no gap
            assert [t.turn_id for t in turns].index(later.covers_from_turn) == (
                [t.turn_id for t in turns].index(earlier.covers_to_turn) + 1)
    for call in story.fake.calls_for("scene_part"):
        assert "A scene is still going on" in call.messages[0]["content"]


async def test_a_scene_that_never_closes_keeps_the_gist_of_all_of_it_in_the_prompt(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake, budget_tokens=3000)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play(engine, chat, range(150))
    scene = await open_scene_id(engine, chat)
    assert scene is not None
    top = await summaries.scene_parts(engine.db, scene, HOST)
    assert 1 < len(top) <= rolling_summaries.TOP_PARTS
    await collect(engine.post_turn(chat, "Line 150: and now?", "$150"))
    system = story.fake.calls_for("narrate")[-1].messages[0]["content"]
    account = system.split(f"{HOST_NAME}'s own account of this scene so far", 1)[1]
    assert "noted lines 0 to" in account  # the start of the scene, rolled up


async def test_the_next_turn_never_waits_for_the_parts(open_engine) -> None:
    story = Story()
    story.fake.set_delay("scene_part", 30)
    engine = await open_engine(story.fake)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    for n in range(30):
        started = time.monotonic()
        await collect(engine.post_turn(chat, f"Line {n}: the tide.", f"${n}"))
        assert time.monotonic() - started < 5
    assert story.fake.calls_for("scene_part")  # asked for, and still being written
    assert not (await summaries.scene_parts(engine.db, await open_scene_id(engine, chat) or 0, HOST))


async def test_a_scene_close_summarizes_the_parts_and_the_lines_after_them(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play(engine, chat, range(33))
    scene = await open_scene_id(engine, chat)
    assert scene is not None
    parts = await summaries.scene_parts(engine.db, scene, HOST)
    await engine.close_scene(chat)
    request = story.fake.calls_for("scene_close")[-1].messages[-1]["content"]
    assert all(p.text in request for p in parts)
    assert "Line 0:" not in request and "Line 32:" in request  # not the raw transcript: its tail only
    written = (await engine.export_story(chat)).scenes[0]
    assert written.summaries[0][1].startswith("I remember the whole evening.")


async def test_regenerating_a_reply_a_part_covers_retracts_it_as_if_only_the_new_reply_had_happened(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake, name="regenerated.sqlite3")
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    story.reply = "The lantern is cursed."
    await play(engine, chat, range(12))
    scene = await open_scene_id(engine, chat)
    assert scene is not None
    covering = await summaries.scene_parts(engine.db, scene, HOST)
    last_reply = await turn_state.last_turn(engine.db, chat)
    assert last_reply is not None and covering[-1].covers_to_turn == last_reply.turn_id

    story.reply = "Aye."
    await collect(engine.regenerate(chat))
    await engine.pipeline.summary_jobs.settle(chat)
    assert covering[-1].memory_id in await retracted(engine)
    await play(engine, chat, range(12, 30))

    reference_story = Story()
    reference = await open_engine(reference_story.fake, name="reference.sqlite3")
    other = (await reference.create_chat(owner="@p:hs", host=HOST)).chat_id
    reference_story.reply = "The lantern is cursed."
    await play(reference, other, range(11))
    reference_story.reply = "Aye."
    await play(reference, other, range(11, 30))
    assert await part_texts(engine, chat) == await part_texts(reference, other)


async def test_a_part_of_turns_regenerated_while_it_was_written_is_not_recorded(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play(engine, chat, range(11))
    gate = asyncio.Event()

    async def slow_part(messages):
        await gate.wait()
        return part(messages)

    story.fake.set_route("scene_part", slow_part)
    story.reply = "The lantern is cursed."
    await collect(engine.post_turn(chat, "Line 11: the tide.", "$11"))  # the stretch is due: a part is being written
    await asyncio.sleep(0.05)
    assert len(story.fake.calls_for("scene_part")) == 1
    story.reply = "Aye."
    await collect(engine.regenerate(chat))
    gate.set()
    await engine.pipeline.summary_jobs.settle(chat)
    assert "cursed" in story.fake.calls_for("scene_part")[0].messages[-1]["content"]  # written from the old reply
    parts = await summaries.scene_parts(engine.db, await open_scene_id(engine, chat) or 0, HOST)
    assert parts and not any("cursed" in p.text for p in parts)  # but not recorded: written again from the new one


async def test_rolling_back_an_older_turn_retracts_every_part_made_from_it(open_engine) -> None:
    story = Story()
    engine = await open_engine(story.fake)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play(engine, chat, range(70))
    scene = await open_scene_id(engine, chat)
    turns = await turn_state.scene_turns(engine.db, scene or 0)
    early = turns[5]
    made = await summaries.summaries_made_from_turn(engine.db, chat, early.turn_id)
    assert len(made) >= 2  # the first part, and the roll-up that took it in
    async with engine.db.transaction() as tx:
        await undo_turn(tx, chat, early)
    assert await summaries.summaries_made_from_turn(engine.db, chat, early.turn_id) == []
    assert set(made) <= await retracted(engine)


async def retracted(engine: Engine) -> set[int]:
    rows = await engine.db.reader.fetch_all("SELECT memory_id FROM memories WHERE retracted = 1")
    return {row[0] for row in rows}


async def part_texts(engine: Engine, chat_id: str) -> list[str]:
    scenes = [s for s in await world.list_scenes(engine.db, chat_id) if s.kind == "main"]
    return [p.text for s in scenes for p in await summaries.scene_parts(engine.db, s.scene_id, HOST)]
