"""Regenerate (swipes): the superseded reply stays as a sibling and what it caused is undone."""

from __future__ import annotations

from core.engine import AfterTurn
from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from core.state import edges as edge_state
from core.state import memory as memory_state
from core.state import plans
from core.state import turns as turn_state
from tests.core.pipeline.conftest import GUEST, HOST, collect

FIRST = "Morning. The harbour bell is ringing."
DISCARDED = ["The festival starts now, come with me!", "Festival it is, then. Lanterns up!"]
KEPT = "Maybe tomorrow; it is raining too hard."


def scripted(*texts: str):
    remaining = list(texts)
    return lambda _messages: remaining.pop(0)


async def lifecycle_step(after: AfterTurn) -> None:
    """Stand-in for the lifecycle service: a reply that announces the festival starts it."""
    if "festival" in after.reply_turn.text.lower():
        for event in await plans.list_world_events(after.db, after.chat_id, ["planned"]):
            await plans.transition_world_event(after.db, after.chat_id, event.world_event_id, "started")


async def play(engine, *, regenerations: int) -> str:
    engine.add_after_turn_step(lifecycle_step)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await engine.greeting(chat.chat_id)
    await plans.plan_world_event(engine.db, chat.chat_id, "Lantern festival")
    await memory_state.record_memory(engine.db, chat.chat_id, "Odile counted the crates alone.", [GUEST])
    await collect(engine.post_turn(chat.chat_id, "Good morning, Wren. Thank you for the tea.", "$1"))
    await collect(engine.post_turn(chat.chat_id, "Shall we go to the festival, friend?", "$2"))
    for _ in range(regenerations):
        updates = await collect(engine.regenerate(chat.chat_id))
        assert updates[-1].done and not updates[-1].truncated
    return chat.chat_id


async def observable_state(engine, chat_id: str) -> dict:
    """Everything a later turn could see, by content (ids and event seqs differ between engines)."""
    witnesses = ["@p:hs", HOST, GUEST]
    memories = {
        who: [(m.text, m.kind, m.pov, m.witnesses, m.significance, m.story_time)
              for m in await memory_state.recent_memories_for(engine.db, chat_id, who, 1000)]
        for who in witnesses
    }
    found = {who: sorted(h.memory.text for h in await memory_state.search_memories(engine.db, chat_id, who, "festival"))
             for who in witnesses}
    edges = [(e.from_id, e.to_id, e.affinity, e.trust, e.summary, e.updated_at)
             for e in await edge_state.edges_in_chat(engine.db, chat_id)]
    world_events = [(w.title, w.status, w.started_at, w.ended_at)
                    for w in await plans.list_world_events(engine.db, chat_id)]
    shown = [(t.role, t.speaker, t.text, t.truncated, t.story_time)
             for t in await turn_state.recent_turns(engine.db, chat_id, 100)]
    return dict(memories=memories, search=found, edges=edges, world_events=world_events, shown_turns=shown)


async def test_regenerating_twice_equals_a_story_with_only_the_last_reply(open_engine):
    """Engine A answers the festival question, then regenerates twice (the first two
    answers start the festival through an after-turn step, and bump Wren's edge);
    engine B plays the same story where only the last answer ever happened.

    Comparison: the projections by content, not by id (memory ids, turn ids and event
    seqs necessarily differ): every memory each witness can read (text, kind, POV,
    witnesses, significance, story time), full-text search results, all edges
    (values and story time of last change), world-event states and times, and the
    shown turns.  Engine A must also keep all three swipes as siblings.
    """
    host_first = AddresseeDecision(speaker=HOST, confidence="high")
    no_change = {"transitions": []}  # the built-in lifecycle classifier; the stand-in step does the work
    warmer = {"affinity": 1, "why": "kind words"}  # the relationship reading after each reply
    fake_a = FakeLLM(routes={"addressee": host_first, "narrate": scripted(FIRST, *DISCARDED, KEPT), "lifecycle": no_change,
                             "relationship": warmer})
    fake_b = FakeLLM(routes={"addressee": host_first, "narrate": scripted(FIRST, KEPT), "lifecycle": no_change,
                             "relationship": warmer})
    engine_a = await open_engine(fake_a, name="a.sqlite3")
    engine_b = await open_engine(fake_b, name="b.sqlite3")

    chat_a = await play(engine_a, regenerations=2)
    chat_b = await play(engine_b, regenerations=0)

    state_a, state_b = await observable_state(engine_a, chat_a), await observable_state(engine_b, chat_b)
    assert state_a == state_b
    assert state_a["world_events"][0][1] == "planned"
    assert (HOST, "@p:hs", 2) in [e[:3] for e in state_a["edges"]]

    reply = await turn_state.last_turn(engine_a.db, chat_a)
    siblings = await turn_state.sibling_turns(engine_a.db, reply.turn_id)
    assert [t.text for t in siblings] == [*DISCARDED, KEPT]
    assert [t.is_shown for t in siblings] == [False, False, True]
    # Regenerating never re-routes (no classifier call) and never shows the replaced reply.
    purposes = [p for p in fake_a.purposes if p not in ("lifecycle", "relationship")]
    assert purposes == ["opening_time", "addressee", "narrate", "narrate", "narrate", "narrate"]  # "morning": routed
    assert fake_a.purposes.count("relationship") == 4  # after each reply, swipes included
    for call, replaced in zip(fake_a.calls_for("narrate")[2:], DISCARDED, strict=True):
        text = "\n".join(m["content"] for m in call.messages)
        assert replaced not in text and "affinity +1" in text  # the edge as before the replaced reply


async def test_regenerate_a_truncated_reply_and_cancel_a_regenerate(open_engine):
    fake = FakeLLM(routes={"narrate": scripted("a b c d e f g h", "one two three four five six", "Done.")},
                   chunk_delay_s=0.03)
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Hi", "$1"))

    updates = []
    async for update in engine.regenerate(chat.chat_id):
        updates.append(update)
        if len(updates) == 2:
            await engine.cancel(chat.chat_id)
    assert updates[-1].done and updates[-1].truncated
    final = await collect(engine.regenerate(chat.chat_id))
    assert final[-1].text == "Done." and not final[-1].truncated

    siblings = await turn_state.sibling_turns(engine.db, int(final[-1].turn_id))
    assert [(t.truncated, t.is_shown) for t in siblings] == [(False, False), (True, False), (False, True)]
    memories = await memory_state.recent_memories_for(engine.db, chat.chat_id, "@p:hs", 50)
    assert [m.text.endswith('"Done."') for m in memories] == [True]
    assert (await edge_state.get_edge(engine.db, chat.chat_id, HOST, "@p:hs")).affinity == 0  # small talk moves nothing


async def test_regenerate_in_a_guest_chat_keeps_the_speaker(open_engine):
    fake = FakeLLM(routes={"narrate": "Aye.", "addressee": AddresseeDecision(speaker=GUEST, confidence="high")})
    engine = await open_engine(fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    await collect(engine.post_turn(chat.chat_id, "Captain?", "$1"))
    updates = await collect(engine.regenerate(chat.chat_id))
    assert updates[-1].speaker_id == GUEST
    assert fake.purposes == ["opening_time", "narrate", "narrate"]  # "Captain?" calls her by name: no routing


async def test_replaying_the_log_after_regenerates_rebuilds_the_same_state(open_engine):
    """Rollbacks are events too: dropping the projections and replaying the log gives the same state."""
    from core.eventlog import replay

    host_first = AddresseeDecision(speaker=HOST, confidence="high")
    fake = FakeLLM(routes={"addressee": host_first, "narrate": scripted(FIRST, *DISCARDED, KEPT)})
    engine = await open_engine(fake)
    chat_id = await play(engine, regenerations=2)
    before = await observable_state(engine, chat_id)
    siblings_before = [(t.turn_id, t.superseded_by) for t in await turn_state.sibling_turns(
        engine.db, (await turn_state.last_turn(engine.db, chat_id)).turn_id)]

    await replay(engine.db)

    assert await observable_state(engine, chat_id) == before
    last = await turn_state.last_turn(engine.db, chat_id)
    assert [(t.turn_id, t.superseded_by) for t in await turn_state.sibling_turns(engine.db, last.turn_id)] \
        == siblings_before
