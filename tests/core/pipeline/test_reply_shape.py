"""A reply's request and its cleaning: max_tokens, stop sequences, a leading name, an empty reply."""

from __future__ import annotations

from core.engine import ReplySettings
from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from tests.core.pipeline.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, collect

OWNER = "@tobin:hs"


async def test_a_reply_has_max_tokens_and_stops_at_the_next_speakers_name(open_engine):
    fake = FakeLLM({"narrate": "Aye.\nTobin: I nod and leave.",
                    "addressee": AddresseeDecision(speaker=HOST, confidence="high")})
    engine = await open_engine(fake, replies=ReplySettings(max_tokens=321))
    await engine.set_persona(OWNER, "Tobin", "a deckhand")
    chat = await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST)
    updates = await collect(engine.post_turn(chat.chat_id, "Hello.", "$1"))
    call = fake.calls_for("narrate")[-1]
    assert call.max_tokens == 321
    assert call.stop == ["\nTobin:", f"\n{GUEST_NAME}:", "\nCaptain:", "\nOdile:"]  # first names, as room allows
    assert updates[-1].text == "Aye."  # the player's line the model started is never shown


async def test_a_group_reply_ends_where_it_starts_anyone_elses_line_whatever_the_stop_limit(open_engine):
    fake = FakeLLM({"narrate": "Aye, the lamp is lit.\nOdile: And I say it is not!",
                    "addressee": AddresseeDecision(speaker=HOST, confidence="high")}, chunk_size=2)
    engine = await open_engine(fake, replies=ReplySettings(extra_stop=("<END>",)))
    await engine.set_persona(OWNER, "Tobin Reyes", "a deckhand")
    chat = (await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST)).chat_id
    await engine.join_player(chat, "@mira:hs", "Mira Holt")
    async for _ in engine.invite_character(chat, "tamsin-vale"):
        pass
    updates = await collect(engine.post_turn(chat, "Wren, is the lamp lit?", "$1"))
    call = fake.calls_for("narrate")[-1]
    assert call.stop == ["\nTobin Reyes:", "\nMira Holt:", f"\n{GUEST_NAME}:", "<END>"]  # the operator's kept
    assert "\nOdile:" not in call.stop  # beyond the limit, yet:
    assert updates[-1].text == "Aye, the lamp is lit." and not updates[-1].truncated
    assert all("Odile" not in u.text and not u.text.endswith("\n") for u in updates)  # never shown, not even begun


async def test_a_leading_speaker_name_is_stripped_while_streaming_and_in_the_record(open_engine):
    fake = FakeLLM({"narrate": f"{HOST_NAME}: *smiles* Welcome back."}, chunk_size=3)
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host=HOST)
    updates = await collect(engine.post_turn(chat.chat_id, "Hi.", "$1"))
    assert all(not u.text.startswith(HOST_NAME[:3]) for u in updates)
    assert updates[-1].text == "*smiles* Welcome back."
    export = await engine.export_story(chat.chat_id)
    assert export.turns[-1].text == "*smiles* Welcome back."


async def test_an_empty_reply_is_asked_for_once_more(open_engine):
    answers = iter(["   ", "There you are."])
    fake = FakeLLM({"narrate": lambda messages: next(answers)})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner=OWNER, host=HOST)
    updates = await collect(engine.post_turn(chat.chat_id, "Hi.", "$1"))
    assert len(fake.calls_for("narrate")) == 2
    assert updates[-1].text == "There you are."


async def test_meanwhile_lines_stop_at_the_other_speaker_and_lose_a_leading_name(open_engine):
    fake = FakeLLM({"meanwhile": lambda messages: f"{HOST_NAME}: The lamp.\n{GUEST_NAME}: Aye."
                    if f"You are {HOST_NAME}" in messages[0]["content"] else "Aye."})
    engine = await open_engine(fake)
    await engine.set_persona(OWNER, "Tobin", "a deckhand")
    chat = await engine.create_chat(owner=OWNER, host=HOST)
    updates = await collect(engine.meanwhile(chat.chat_id, HOST, GUEST))
    first = fake.calls_for("meanwhile")[0]
    assert first.stop == [f"\n{GUEST_NAME}:", "\nTobin:"] and first.max_tokens
    assert [u.text for u in updates if u.done][0] == "The lamp."
