"""Group scenes: one story scenario for everyone present, and the guest's entrance into it (a V3
card's group greeting sets its voice)."""

from __future__ import annotations

from pathlib import Path

from core.llm import FakeLLM
from tests.core.pipeline.conftest import collect

DATA = Path(__file__).parents[2] / "data"
OWNER = "@tobin:hs"


async def _story(open_engine, fake):
    engine = await open_engine(fake)
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    await engine.set_persona(OWNER, "Tobin Reyes")
    chat = await engine.create_chat(owner=OWNER, host=maren.character_id, guest=ilse.character_id)
    return engine, chat, maren, ilse


async def test_everyone_present_shares_the_hosts_scenario(open_engine):
    fake = FakeLLM({"narrate": "*nods*"})
    engine, chat, maren, ilse = await _story(open_engine, fake)
    await engine.greeting(chat.chat_id)
    await collect(engine.post_turn(chat.chat_id, "Ilse, any letters?", "$1"))
    [guest_prompt] = fake.calls_for("narrate")
    system = guest_prompt.messages[0]["content"]
    assert "Character: Ilse Varga of the Northern Post" in system
    assert "Scenario: Tobin Reyes washed up below the Gullrock light" in system  # the host's story
    assert "mail boat puts in" not in system  # not the guest's own card's scenario


async def test_the_guest_enters_from_its_greeting_once_and_it_is_remembered(open_engine):
    fake = FakeLLM({"narrate": "*Ilse shoulders through the lamp-room door, dripping.* Post for the keeper!"})
    engine, chat, maren, ilse = await _story(open_engine, fake)
    greeting = await engine.greeting(chat.chat_id)
    entrance = await engine.guest_entrance(chat.chat_id)
    assert entrance is not None and entrance.speaker_id == ilse.character_id and entrance.done
    assert entrance.text.startswith("*Ilse shoulders")
    [call] = fake.calls_for("narrate")
    last = call.messages[-1]["content"]
    assert greeting.text.split("*")[1] in last  # the host's greeting, as the scene so far
    assert "Write Ilse Varga of the Northern Post's entrance" in last
    assert "Both of you look like you've seen a ghost." in last  # her card's group greeting, for her voice
    assert "You look half drowned" not in last  # not her greeting for one
    assert "mail boat" not in call.messages[0]["content"]
    # Once: asked again, the same turn comes back and no model is called.
    again = await engine.guest_entrance(chat.chat_id)
    assert again is not None and again.turn_id == entrance.turn_id and len(fake.calls_for("narrate")) == 1
    # The host sees the entrance in its next prompt, as said by Ilse.
    await collect(engine.post_turn(chat.chat_id, "Maren, who is that?", "$1"))
    host_prompt = fake.calls_for("narrate")[-1].messages
    assert any("Ilse Varga of the Northern Post: *Ilse shoulders" in m["content"] for m in host_prompt[1:])


async def test_a_story_without_a_guest_has_no_entrance(open_engine):
    fake = FakeLLM({})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host="wren-halloway")
    await engine.greeting(chat.chat_id)
    assert await engine.guest_entrance(chat.chat_id) is None and fake.purposes == ["opening_time"]


async def test_a_reply_that_speaks_to_the_other_character_gets_its_short_answer(open_engine):
    replies = iter(["Ilse, tell the lad what you heard in Portkell.", "*Ilse shrugs.* That the light went dark."])
    fake = FakeLLM({"narrate": lambda _messages: next(replies)})
    engine, chat, maren, ilse = await _story(open_engine, fake)
    updates = await collect(engine.post_turn(chat.chat_id, "Maren, what did you see at the wreck?", "$1"))
    done = [u for u in updates if u.done]
    assert [(u.speaker_id, u.text) for u in done] == [
        (maren.character_id, "Ilse, tell the lad what you heard in Portkell."),
        (ilse.character_id, "*Ilse shrugs.* That the light went dark."),
    ]
    follow_up = fake.calls_for("narrate")[1]
    assert follow_up.max_tokens == 150 and "Write Ilse Varga of the Northern Post's short answer" in follow_up.messages[-1]["content"]
    # Posted again, nothing is written twice; a reply that only mentions her, or acts, gets no follow-up.
    await collect(engine.post_turn(chat.chat_id, "Maren, what did you see at the wreck?", "$1"))
    assert len(fake.calls_for("narrate")) == 2
