"""The reply prompt with real cards (a V2 PNG and a V3 JSON card): layout, macros, roles, persona."""

from __future__ import annotations

import re
from pathlib import Path

from core.llm import FakeLLM
from core.llm.roles import role_order_error
from core.services.addressee import AddresseeDecision
from tests.core.pipeline.conftest import collect

DATA = Path(__file__).parents[1] / "data"
OWNER = "@maren-player:hs"


async def _story(open_engine, fake):
    engine = await open_engine(fake)
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    await engine.set_persona(OWNER, "Tobin Reyes", "a young deckhand, shipwrecked, stubborn")
    chat = await engine.create_chat(owner=OWNER, host=maren.character_id, guest=ilse.character_id)
    return engine, chat, maren, ilse


def _route_to(character_id: str):
    return lambda messages: AddresseeDecision(speaker=character_id, confidence="high")


async def test_a_guest_reply_folds_the_other_character_into_alternating_named_turns(open_engine):
    fake = FakeLLM({"narrate": "*nods*"})
    engine, chat, maren, ilse = await _story(open_engine, fake)
    greeting = await engine.greeting(chat.chat_id)
    assert "Tobin Reyes" in greeting.text and "{{" not in greeting.text
    fake.set_route("addressee", _route_to(maren.character_id))
    await collect(engine.post_turn(chat.chat_id, "Thank you for the tea.", "$1"))
    fake.set_route("addressee", _route_to(ilse.character_id))
    await collect(engine.post_turn(chat.chat_id, "Any letters, Ilse?", "$2"))

    messages = fake.calls_for("narrate")[-1].messages
    assert role_order_error(messages) is None
    assert [m["role"] for m in messages] == ["system", "user"]  # Ilse has not spoken: all one user turn
    # The V3 card's system_prompt, with {{original}} standing for the main prompt
    assert messages[0]["content"].startswith("You are Ilse Varga of the Northern Post in an ongoing roleplay")
    assert "\nIlse talks fast and drops her g's" in messages[0]["content"] and "{{" not in messages[0]["content"]
    history = messages[1]["content"]
    assert "Maren Ashdown: *Maren Ashdown sets a chipped mug" in history
    assert "Tobin Reyes: Thank you for the tea." in history
    assert "Maren Ashdown: *nods*" in history
    assert history.rstrip().endswith("Ilse always mentions one piece of island gossip.")


async def test_the_system_message_follows_the_card_with_every_macro_resolved(open_engine):
    fake = FakeLLM({"narrate": "Aye."})
    engine, chat, maren, _ = await _story(open_engine, fake)
    await engine.greeting(chat.chat_id)
    fake.set_route("addressee", _route_to(maren.character_id))
    await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    messages = fake.calls_for("narrate")[-1].messages
    system = messages[0]["content"]
    # {{original}}: the main prompt, then the card's own instruction
    assert system.startswith("You are Maren Ashdown in an ongoing roleplay with Tobin Reyes, with Ilse Varga of the "
                             "Northern Post also in the scene. Stay in character.")
    assert "never speak, act or decide for Tobin Reyes or Ilse Varga of the Northern Post." in system
    assert "Write in the third person, past tense" in system
    order = [system.index(x) for x in ("Character: Maren Ashdown", "Description: Maren Ashdown keeps",
                                       "Personality: gruff", "Scenario: Tobin Reyes washed up",
                                       "User: Tobin Reyes", "Tobin Reyes's persona: a young deckhand",
                                       "Example dialogue")]
    assert order == sorted(order)
    assert "Story time now:" not in system  # it changes: it is in the notes after the player's line
    assert "Story time now: Wednesday, April 1, 2026, 9:00 AM (morning)." in messages[-1]["content"]
    assert "Wednesday, 9:00 AM" in system  # {{weekday}}, {{time}}: story time
    assert "Tobin Reyes: Do you ever leave the island?" in system  # <USER> in mes_example
    assert system.count("<example>") == 2 and "<START>" not in system
    text = "\n".join(m["content"] for m in messages)
    assert not re.search(r"\{\{|\}\}|<USER>|<BOT>", text, re.IGNORECASE)
    assert " you (the player)" not in text and "You:" not in text
    assert messages[-1]["content"].endswith("Never write Tobin Reyes's lines.")
    assert messages[-1]["role"] == "user"


async def test_examples_are_dropped_first_when_the_budget_is_tight(open_engine):
    fake = FakeLLM({"narrate": "Aye."})
    engine = await open_engine(fake, budget_tokens=700)
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    chat = await engine.create_chat(owner=OWNER, host=maren.character_id)
    for n in range(6):
        await collect(engine.post_turn(chat.chat_id, f"Line {n}: " + "the tide turns " * 40, f"${n}"))
    first, last = (call.messages[0]["content"] for call in fake.calls_for("narrate")[::5])
    assert "<example>" in first and "<example>" not in last


async def test_regenerating_the_greeting_opens_with_a_user_turn_and_keeps_the_card_clean(open_engine):
    fake = FakeLLM({"narrate": "*The lamp hums.*"})
    engine, chat, *_ = await _story(open_engine, fake)
    await engine.greeting(chat.chat_id)
    await collect(engine.regenerate(chat.chat_id))
    messages = fake.calls_for("narrate")[-1].messages
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "take 2" in messages[-1]["content"] and "take 2" not in messages[0]["content"]


async def test_routing_has_room_to_answer_a_clean_roster_and_no_placeholder_values(open_engine):
    fake = FakeLLM({"narrate": "Aye."})
    engine, chat, maren, ilse = await _story(open_engine, fake)
    fake.set_route("addressee", _route_to(ilse.character_id))
    await collect(engine.post_turn(chat.chat_id, "Has Ilse brought any letters?", "$1"))  # a mention: routed
    call = fake.calls_for("addressee")[0]
    assert call.max_tokens >= 300 and call.response_schema is not None
    system = call.messages[0]["content"]
    assert "- maren-ashdown (Maren Ashdown): Maren Ashdown keeps the Gullrock lighthouse." in system
    assert "{{" not in system and "Tobin Reyes" in system
    for line in system.splitlines():  # every description line ends on a whole sentence
        if line.startswith("- "):
            assert line.rstrip().endswith((".", "!", "?", "…", '"')), line
    assert not re.search(r'":\s*(0|""|\[\])', system)


async def test_an_unusable_structured_answer_is_counted_for_status(open_engine):
    from core.llm import structured

    fake = FakeLLM({"narrate": "Aye.", "addressee": "I think Maren should answer."})
    engine, chat, *_ = await _story(open_engine, fake)
    before = structured.parse_failures["addressee"]
    await collect(engine.post_turn(chat.chat_id, "Does Maren know Ilse well?", "$1"))  # names both: routed
    status = await engine.status(chat.chat_id)
    assert status.parse_failures["addressee"] == before + 1
    assert status.persona_name == "Tobin Reyes" and status.persona_description.startswith("a young deckhand")


async def test_the_next_prompt_shown_is_exactly_the_one_sent(open_engine):
    fake = FakeLLM({"narrate": "Aye."})
    engine = await open_engine(fake)
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    await engine.set_persona(OWNER, "Tobin Reyes", "a deckhand")
    chat = await engine.create_chat(owner=OWNER, host=maren.character_id)
    await engine.greeting(chat.chat_id)
    await collect(engine.post_turn(chat.chat_id, "Thank you.", "$1"))
    shown = await engine.next_prompt(chat.chat_id, pending_line="Where is the buoy?")
    await collect(engine.post_turn(chat.chat_id, "Where is the buoy?", "$2"))
    sent = fake.calls_for("narrate")[-1]
    assert shown.messages == sent.messages
    assert (shown.max_tokens, shown.stop) == (sent.max_tokens, sent.stop)


async def test_both_real_cards_keep_every_field_on_import(db):
    from core.characters.cards import import_card

    maren = await import_card(db, (DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await import_card(db, (DATA / "ilse_varga_v3.json").read_text())
    assert (maren.spec, ilse.spec) == ("chara_card_v2", "chara_card_v3")
    for character in (maren, ilse):
        assert "<START>" in character.mes_example and character.post_history_instructions
        assert character.raw_card["data"]["character_book"]["entries"]
    assert maren.system_prompt.startswith("{{original}}") and maren.alternate_greetings
    assert ilse.raw_card["data"]["nickname"] == "Ilse" and ilse.raw_card["data"]["group_only_greetings"]
