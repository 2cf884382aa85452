"""The story so far: each character's older scene summaries roll up into one account of its own,
within its share of the prompt, refreshed as scenes close; no summary drops out of reach."""

from __future__ import annotations

import re

from core.llm import FakeLLM
from core.services import replying
from core.services.addressee import AddresseeDecision
from core.services.rollback import undo_turn
from core.state import summaries, world
from core.state import turns as turn_state
from tests.core.story.conftest import HOST, HOST_NAME, collect

PLACES = ["Gullrock", "Skerry", "Kellhaven", "Marrowby", "Tallowmere", "Brinecombe", "Saltash", "Wyndle", "Corvey",
          "Pellmoor"]


def scene_summary(messages) -> str:
    place = re.search(r"we reached (\w+)", messages[-1]["content"])
    return f"I walked with Tobin to {place.group(1) if place else 'nowhere'} and we talked of the tide there."


def story(messages) -> str:
    """A story so far that keeps the places it is told of (as a real summarizer would, shorter)."""
    content = messages[-1]["content"]
    places = re.findall(r"We went to ([\w, ]+)\.", content) + re.findall(r"to (\w+) and", content)
    names = [p.strip() for chunk in places for p in chunk.split(",") if p.strip()]
    return f"We went to {', '.join(dict.fromkeys(names))}." if names else "Nothing yet."


def fake() -> FakeLLM:
    return FakeLLM({"narrate": "Aye.", "scene_close": scene_summary, "story_so_far": story, "threads": {},
                    "lifecycle": {}, "addressee": AddresseeDecision(speaker=HOST, confidence="high")})


async def play_scenes(engine, chat_id: str, count: int, exchanges: int = 1) -> None:
    for n in range(count):
        await collect(engine.post_turn(chat_id, f"At last we reached {PLACES[n]}.", f"${n}"))
        for k in range(1, exchanges):
            await collect(engine.post_turn(chat_id, f"We look around, {k}.", f"${n}.{k}"))
        await engine.close_scene(chat_id)


async def test_older_scene_summaries_roll_up_into_a_story_so_far_within_its_share(open_engine, monkeypatch) -> None:
    reports = []
    assemble = replying.assemble_prompt

    async def recording(*args, **kwargs):
        reports.append(report := await assemble(*args, **kwargs))
        return report

    monkeypatch.setattr(replying, "assemble_prompt", recording)
    llm = fake()
    engine = await open_engine(llm, budget_tokens=3000)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play_scenes(engine, chat, 8, exchanges=6)
    current = await summaries.latest_story(engine.db, chat, HOST)
    assert current is not None and current.text == "We went to Gullrock, Skerry, Kellhaven, Marrowby."
    # Refreshed as each scene dropped out of the latest four: the previous account and the summary that left.
    requests = [c.messages[-1]["content"] for c in llm.calls_for("story_so_far")]
    assert len(requests) == 4 and "We went to Gullrock, Skerry, Kellhaven." in requests[-1] and "Marrowby" in requests[-1]
    assert all("A story so far" not in r for r in requests[:1])

    await collect(engine.post_turn(chat, "Where next?", "$next"))
    system = llm.calls_for("narrate")[-1].messages[0]["content"]
    dialogue = "\n".join(m["content"] for m in llm.calls_for("narrate")[-1].messages[1:])
    assert f"{HOST_NAME}'s story so far, in its own words:\n- " in system and "Gullrock, Skerry" in system
    remembered = system.split(f"{HOST_NAME}'s own memories of earlier scenes:", 1)[1].split("\n\n")[0]
    # The latest four scenes' summaries, but those whose every line the dialogue still shows.
    shown = [place for place in PLACES[4:8] if f"to {place} and" in remembered]
    assert shown and "Marrowby" not in remembered and "Tallowmere" in shown
    assert all(f"reached {place}" not in dialogue for place in shown[:1])
    assert all(f"reached {place}" in dialogue for place in PLACES[4:8] if place not in shown)
    report = reports[-1]
    assert 0 < report.section_tokens["story"] <= report.section_budgets["story"]


async def test_a_story_so_far_stays_within_its_share_however_long_the_model_writes(open_engine) -> None:
    llm = fake()
    llm.set_route("story_so_far", "We went on. " * 400)
    engine = await open_engine(llm, budget_tokens=3000)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play_scenes(engine, chat, 6)
    report = await engine.context(chat)
    story_section = next(s for s in report.sections if s.name == "story")
    assert story_section.items == 1 and 0 < story_section.tokens <= 0.06 * 3000


async def test_no_summary_drops_out_of_reach(open_engine) -> None:
    llm = fake()
    llm.set_route("story_so_far", "Much has happened.")  # an account that keeps no place names at all
    engine = await open_engine(llm, budget_tokens=2500)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play_scenes(engine, chat, 10, exchanges=6)
    for place in PLACES:
        prompt = await engine.next_prompt(chat, f"Tell me about {place} again.")
        said_before = "\n".join(m["content"] for m in prompt.messages[:-1]) + prompt.messages[-1]["content"].split(
            "Tell me about", 1)[0]
        notes = prompt.messages[-1]["content"].split("[Story notes for", 1)[1]
        in_dialogue = f"At last we reached {place}." in "\n".join(m["content"] for m in prompt.messages[1:-1])
        assert in_dialogue or f"to {place} and we talked" in said_before + notes, place


async def test_rolling_back_a_turn_of_a_scene_it_took_in_retracts_the_story_so_far(open_engine) -> None:
    engine = await open_engine(fake(), budget_tokens=3000)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await play_scenes(engine, chat, 6)
    first_scene = [s for s in await world.list_scenes(engine.db, chat) if s.kind == "main"][0]
    early = (await turn_state.scene_turns(engine.db, first_scene.scene_id))[0]
    assert len(await summaries.summaries_made_from_turn(engine.db, chat, early.turn_id)) == 2
    async with engine.db.transaction() as tx:
        await undo_turn(tx, chat, early)
    assert await summaries.latest_story(engine.db, chat, HOST) is None
