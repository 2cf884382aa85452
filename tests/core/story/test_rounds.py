"""Rounds: the players' lines answered by one reply that speaks to each of them, exactly once."""

from __future__ import annotations

import pytest

from core.engine import RoundLine
from core.errors import InvalidInputError, NotAPlayerError
from core.eventlog import replay
from core.state import memory as memory_state
from tests.core.conftest import dump_projections, row_counts
from tests.core.story.conftest import GUEST, HOST, HOST_NAME, Plot, collect, prompt_text, settle

TOBIN, MIRA = "@tobin:hs", "@mira:hs"


async def story(open_engine):
    plot = Plot()
    engine = await open_engine(plot.fake)
    await engine.set_persona(TOBIN, "Tobin Reyes")
    chat = (await engine.create_chat(owner=TOBIN, host=HOST, guest=GUEST)).chat_id
    await engine.greeting(chat)
    await engine.join_player(chat, MIRA, "Mira Holt")
    return engine, plot, chat


ROUND = [RoundLine(None, "Is the lamp lit tokLAMPx?", "$t1"), RoundLine(MIRA, "And the boat tokBOATx?", "$m1")]


async def test_a_round_is_answered_by_one_reply_to_every_player_in_it(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    plot.reply = "Lit, and the boat is sound tokBOTHx."
    updates = await collect(engine.post_round(chat, ROUND))
    [done] = [u for u in updates if u.done]
    assert done.speaker_id == HOST and {u.answering for u in updates} == {(TOBIN, MIRA)}
    [call] = plot.fake.calls_for("narrate")[-1:]
    assert len(plot.fake.calls_for("narrate")) == 1 and plot.fake.calls_for("addressee") == []  # one reply, no routing
    last = call.messages[-1]["content"]
    assert "Tobin Reyes: Is the lamp lit tokLAMPx?\n\nMira Holt: And the boat tokBOATx?" in last
    assert f"[{HOST_NAME} answers Tobin Reyes and Mira Holt in one reply, speaking to each of them.]" in last
    await settle(engine, chat)
    [memory] = [m for m in await memory_state.recent_memories_for(engine.db, chat, MIRA, 10) if "tokBOTHx" in m.text]
    assert memory.text.startswith('Tobin Reyes said: "Is the lamp lit tokLAMPx?" Mira Holt said: "And the boat')
    assert set(memory.witnesses) == {TOBIN, MIRA, HOST, GUEST}

    # Exactly once: the round, or any line of it, posted again returns the same reply.
    before = await row_counts(engine.db)
    for again in (engine.post_round(chat, ROUND), engine.post_turn(chat, ROUND[0].text, "$t1"),
                  engine.post_turn(chat, ROUND[1].text, "$m1", player=MIRA)):
        repeated = await collect(again)
        assert [(u.turn_id, u.answering) for u in repeated] == [(done.turn_id, (TOBIN, MIRA))]
    assert await row_counts(engine.db) == before and len(plot.fake.calls_for("narrate")) == 1

    # A new take answers both again.
    plot.reply = "Take two tokTWOx."
    regenerated = await collect(engine.regenerate(chat))
    assert regenerated[-1].answering == (TOBIN, MIRA)
    assert "answers Tobin Reyes and Mira Holt in one reply" in prompt_text(plot.fake.calls_for("narrate")[-1])

    snapshot = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == snapshot

    # A rewind takes the whole round back.
    rewound = await engine.rewind(chat)
    assert set(rewound.line_sources) == {"$t1", "$m1"}


async def test_a_round_is_routed_by_the_names_its_lines_call(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    plot.reply = "Ships? None."
    updates = await collect(engine.post_round(chat, [RoundLine(None, "Hello all.", "$1"),
                                                     RoundLine(MIRA, "Odile, any ships?", "$2")]))
    assert updates[-1].speaker_id == GUEST and plot.fake.calls_for("addressee") == []
    plot.speaker = GUEST
    await collect(engine.post_round(chat, [RoundLine(None, "Wren, the lamp?", "$3"),
                                           RoundLine(MIRA, "Odile, the ships?", "$4")]))
    [routing] = plot.fake.calls_for("addressee")  # two characters called: one classifier call
    assert "Tobin Reyes: Wren, the lamp?\nMira Holt: Odile, the ships?" in routing.messages[-1]["content"]
    assert "Tobin Reyes and Mira Holt's latest line" in routing.messages[-1]["content"]


async def test_bad_rounds_write_nothing(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    before = await row_counts(engine.db)
    for lines in ([], [RoundLine(None, "One.", "$1"), RoundLine(MIRA, "Two.", "$1")],
                  [RoundLine(None, "One.", "$1"), RoundLine(MIRA, "(( out of the story ))", "$2")],
                  [RoundLine(None, " ", "$1")], [RoundLine(None, "One.", "$1#reply")]):
        with pytest.raises(InvalidInputError):
            await collect(engine.post_round(chat, lines))
    with pytest.raises(NotAPlayerError):
        await collect(engine.post_round(chat, [RoundLine(None, "One.", "$1"), RoundLine("@x:hs", "Two.", "$2")]))
    assert await row_counts(engine.db) == before
