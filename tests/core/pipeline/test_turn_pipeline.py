"""The turn pipeline with a purpose-routed FakeLLM: call plan, idempotency, what a prompt may hold, cancel."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from core.services.tokens import estimate_prompt_tokens
from core.state import digests as digest_state
from core.state import edges as edge_state
from core.state import memory as memory_state
from core.state import turns as turn_state
from tests.core.pipeline.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, collect

SECRET = "Odile hid the silver key under the lighthouse stairs"


def route_by_name(messages) -> AddresseeDecision:
    """Addressee stand-in: the captain answers when named, else Wren."""
    line = messages[-1]["content"].rsplit("\n", 1)[-1]
    return AddresseeDecision(speaker=GUEST if "Captain" in line else HOST, confidence="high")


def prompt_text(call) -> str:
    return "\n".join(m["content"] for m in call.messages)


async def test_one_character_chat_asks_the_narrative_model_first(open_engine):
    fake = FakeLLM(routes={"narrate": "Hello."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hi", "$1"))
    await collect(engine.post_turn(chat.chat_id, "Still there?", "$2"))
    assert fake.purposes == ["opening_time", "narrate", "narrate"]  # the first: when the story begins
    assert all(c.streamed and c.role == "narrative" for c in fake.calls_for("narrate"))


async def test_a_line_calling_one_character_needs_no_classifier_and_a_mention_asks_once(open_engine):
    fake = FakeLLM(routes={"narrate": "Aye.", "addressee": route_by_name})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)

    updates = await collect(engine.post_turn(chat.chat_id, "Captain, is the ship ready?", "$1"))
    assert fake.purposes == ["opening_time", "narrate"]
    assert (updates[-1].speaker_name, updates[-1].speaker_id) == (GUEST_NAME, GUEST)
    assert f"Character: {GUEST_NAME}" in fake.calls[1].system_prompt

    updates = await collect(engine.post_turn(chat.chat_id, "Does the Captain sail today?", "$2"))  # a mention
    assert fake.purposes == ["opening_time", "narrate", "addressee", "narrate"]
    assert fake.calls[2].role == "classifier" and not fake.calls[2].streamed


async def test_same_source_twice_makes_one_user_turn_and_one_reply(open_engine):
    fake = FakeLLM(routes={"narrate": "The kettle sings."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)

    first = await collect(engine.post_turn(chat.chat_id, "Tea?", "$same"))
    second = await collect(engine.post_turn(chat.chat_id, "Tea?", "$same"))

    assert len(fake.calls_for("narrate")) == 1
    assert [(u.text, u.done, u.turn_id) for u in second] == [(first[-1].text, True, first[-1].turn_id)]
    turns = await turn_state.recent_turns(engine.db, chat.chat_id, 10)
    assert [(t.role, t.source_id) for t in turns] == [("user", "$same"), ("assistant", "$same#reply")]


async def test_concurrent_posts_of_one_source_generate_once(open_engine):
    fake = FakeLLM(routes={"narrate": "Once only."}, delays={"narrate": 0.05})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    results = await asyncio.gather(*(collect(engine.post_turn(chat.chat_id, "Hi", "$x")) for _ in range(3)))
    assert len(fake.calls_for("narrate")) == 1
    assert {r[-1].turn_id for r in results} == {results[0][-1].turn_id}


async def test_a_prompt_never_holds_a_memory_its_speaker_did_not_witness(open_engine):
    fake = FakeLLM(routes={"narrate": "Hm.", "addressee": route_by_name})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await memory_state.record_memory(engine.db, chat.chat_id, SECRET, [GUEST], significance=3)

    await collect(engine.post_turn(chat.chat_id, "Wren, what do you know about the key?", "$1"))
    await collect(engine.post_turn(chat.chat_id, "Captain, where is the key?", "$2"))

    wren_call, odile_call = fake.calls_for("narrate")
    assert f"Character: {HOST_NAME}" in wren_call.system_prompt and SECRET not in prompt_text(wren_call)
    assert f"Character: {GUEST_NAME}" in odile_call.system_prompt and SECRET in prompt_text(odile_call)


async def test_summaries_are_the_speakers_own_point_of_view(open_engine):
    fake = FakeLLM(routes={"narrate": "Hm."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    fake.set_route("addressee", AddresseeDecision(speaker=HOST, confidence="high"))
    both = ["@p:hs", HOST, GUEST]
    await memory_state.record_memory(engine.db, chat.chat_id, "Wren's view: the captain seemed tired.",
                                     both, kind="summary", pov=HOST)
    await memory_state.record_memory(engine.db, chat.chat_id, "Odile's view: the bookseller pried.",
                                     both, kind="summary", pov=GUEST)

    await collect(engine.post_turn(chat.chat_id, "Morning!", "$1"))

    text = prompt_text(fake.calls_for("narrate")[0])
    assert "Wren's view: the captain seemed tired." in text
    assert "Odile's view" not in text


async def test_digests_surface_once_and_only_to_participants(open_engine):
    fake = FakeLLM(routes={"narrate": "I see.", "addressee": route_by_name})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await digest_state.create_digest(engine.db, chat.chat_id, "Wren and Odile argued about the map.",
                                     participants=[HOST, GUEST])

    await collect(engine.post_turn(chat.chat_id, "Captain, what happened?", "$1"))
    await collect(engine.post_turn(chat.chat_id, "Captain, and then?", "$2"))

    first, second = fake.calls_for("narrate")
    assert "argued about the map" in first.last_user_message  # this turn's notes, not the cached system part
    assert "argued about the map" not in first.system_prompt
    assert "argued about the map" not in second.last_user_message
    assert await digest_state.pending_digests(engine.db, chat.chat_id) == []


async def test_an_edge_moves_only_on_what_the_exchange_shows_and_only_after_the_reply(open_engine):
    fake = FakeLLM(routes={"narrate": "Come in from the rain.", "addressee": route_by_name,
                           "relationship": {"affinity": 2, "trust": 1, "why": "thanked her for the shelter"}})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)

    updates = await collect(engine.post_turn(chat.chat_id, "Wren, may I come in?", "$1"))
    [memory] = await memory_state.memories_from_turn(engine.db, chat.chat_id, int(updates[-1].turn_id))
    assert memory.witnesses == tuple(sorted(["@p:hs", HOST, GUEST]))
    assert "may I come in?" in memory.text and "Come in from the rain." in memory.text
    await engine.pipeline.close()  # let after-turn work finish
    assert fake.purposes == ["opening_time", "narrate"]  # small talk: no reading, no change
    assert (await edge_state.get_edge(engine.db, chat.chat_id, HOST, "@p:hs")).affinity == 0

    updates = await collect(engine.post_turn(chat.chat_id, "Thank you, Wren. You are kind.", "$2"))
    await engine.pipeline.close()
    assert fake.purposes == ["opening_time", "narrate", "narrate", "relationship"]  # the reading follows the reply
    edge = await edge_state.get_edge(engine.db, chat.chat_id, HOST, "@p:hs")
    assert (edge.affinity, edge.trust, edge.summary) == (2, 1, "thanked her for the shelter")
    assert (await edge_state.get_edge(engine.db, chat.chat_id, GUEST, "@p:hs")).affinity == 0
    [change] = await edge_state.edge_changes_caused_by(engine.db, chat.chat_id, int(updates[-1].turn_id))
    assert (change.from_id, change.to_id) == (HOST, "@p:hs")


async def test_prompt_stays_within_the_token_budget(open_engine):
    fake = FakeLLM(routes={"narrate": "word " * 200})
    engine = await open_engine(fake, budget_tokens=800)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    for n in range(12):
        await collect(engine.post_turn(chat.chat_id, f"Line {n}: " + "and more " * 60, f"${n}"))

    last = fake.calls_for("narrate")[-1]
    assert estimate_prompt_tokens(last.messages) <= 800
    assert last.messages[-1]["content"].startswith("Line 11:")
    assert f"Character: {HOST_NAME}" in last.system_prompt
    assert not any(m["content"].startswith("Line 0:") for m in last.messages)


async def test_cancel_mid_stream_keeps_a_truncated_turn_and_leaves_no_task(open_engine):
    fake = FakeLLM(routes={"narrate": "one two three four five six seven eight nine ten"}, chunk_delay_s=0.05)
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    assert await engine.cancel(chat.chat_id) is False  # nothing in flight

    updates = []
    async for update in engine.post_turn(chat.chat_id, "Count for me", "$1"):
        updates.append(update)
        if len(updates) == 2:
            assert await engine.cancel(chat.chat_id) is True

    final = updates[-1]
    assert [u.done for u in updates] == [False] * (len(updates) - 1) + [True]
    assert final.truncated and final.text.startswith("one two") and "ten" not in final.text
    assert asyncio.all_tasks() == {asyncio.current_task()}
    reply = await turn_state.require_turn(engine.db, int(final.turn_id))
    assert reply.truncated and reply.text == final.text and reply.source_id == "$1#reply"
    # The stopped reply is the reply: the same source does not generate again.
    again = await collect(engine.post_turn(chat.chat_id, "Count for me", "$1"))
    assert again[-1].turn_id == final.turn_id and len(fake.calls_for("narrate")) == 1


async def test_cancelled_consumer_keeps_the_partial_reply(open_engine):
    fake = FakeLLM(routes={"narrate": "alpha beta gamma delta epsilon zeta"}, chunk_delay_s=0.05)
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    seen = []

    async def consume():
        async for update in engine.post_turn(chat.chat_id, "Go", "$1"):
            seen.append(update)

    task = asyncio.create_task(consume())
    while len(seen) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    reply = await turn_state.last_turn(engine.db, chat.chat_id)
    assert reply is not None and reply.truncated and reply.text.startswith(seen[-1].text)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_consumer_closing_the_stream_keeps_the_partial_reply(open_engine):
    fake = FakeLLM(routes={"narrate": "alpha beta gamma delta epsilon zeta"}, chunk_delay_s=0.02)
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    seen = []
    async with aclosing(engine.post_turn(chat.chat_id, "Go", "$1")) as updates:
        async for update in updates:
            seen.append(update)
            if len(seen) == 2:
                break

    reply = await turn_state.last_turn(engine.db, chat.chat_id)
    assert reply is not None and reply.truncated and reply.text == seen[-1].text
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancel_during_routing_stops_before_narration(open_engine):
    fake = FakeLLM(routes={"narrate": "Never said.", "addressee": route_by_name}, delays={"addressee": 0.2})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)

    turn = asyncio.create_task(collect(engine.post_turn(chat.chat_id, "Is the Captain here yet?", "$1")))
    while not fake.calls_for("addressee"):
        await asyncio.sleep(0.01)
    assert await engine.cancel(chat.chat_id) is True
    updates = await turn

    assert [(u.done, u.truncated, u.text) for u in updates] == [(True, True, "")]
    assert fake.purposes == ["opening_time", "addressee"]
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_full_text_recall_brings_back_an_old_memory(open_engine):
    fake = FakeLLM(routes={"narrate": "Mm."})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await memory_state.record_memory(engine.db, chat.chat_id, "Wren lent you her grandfather's brass compass.",
                                     ["@p:hs", HOST])
    for n in range(35):  # past the dialogue window (20 exchanges) and the 8 recent memories
        await collect(engine.post_turn(chat.chat_id, f"Small talk number {n}.", f"${n}"))

    await collect(engine.post_turn(chat.chat_id, "Do you still want the compass back?", "$last"))

    assert "brass compass" in prompt_text(fake.calls_for("narrate")[-1])
    assert "brass compass" not in prompt_text(fake.calls_for("narrate")[-2])  # recent memories alone miss it


async def test_nothing_is_kept_per_chat_once_its_turns_and_after_work_are_done(open_engine):
    """Memory follows the turns in flight, not every chat ever played: no lock, generation or task is left."""
    fake = FakeLLM(routes={"narrate": "Noted."})
    engine = await open_engine(fake)
    after_work_done = 0

    async def after_turn(_after) -> None:
        nonlocal after_work_done
        await asyncio.sleep(0.01)
        after_work_done += 1

    engine.add_after_turn_step(after_turn)
    chats = [await engine.create_chat(owner="@p:hs", host=HOST) for _ in range(30)]
    await asyncio.gather(*(collect(engine.post_turn(chat.chat_id, "Hello there.", f"$line-{i}")) for i, chat in enumerate(chats)))
    assert engine.pipeline.chats_held() > 0  # the after-turn work is still running
    for _ in range(200):
        if after_work_done == 30:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    assert after_work_done == 30
    assert engine.pipeline.chats_held() == 0
