"""Several players in one story: each answered and named, each a witness of what is said while
they play (and of nothing before), with a persona of their own; a player who left is refused."""

from __future__ import annotations

import pytest

from core.engine import PlayerInfo
from core.errors import InvalidInputError, NotAPlayerError, NotYourLineError, OwnerCannotLeaveError
from core.state import memory as memory_state
from tests.core.conftest import row_counts
from tests.core.story.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, Plot, collect, prompt_text, settle

TOBIN, MIRA = "@tobin:hs", "@mira:hs"


async def story(open_engine, **cast):
    plot = Plot()
    engine = await open_engine(plot.fake)
    await engine.set_persona(TOBIN, "Tobin Reyes", "a young deckhand")
    chat = (await engine.create_chat(owner=TOBIN, host=HOST, **cast)).chat_id
    return engine, plot, chat


async def test_two_players_are_each_answered_and_the_prompt_names_both(open_engine) -> None:
    engine, plot, chat = await story(open_engine, guest=GUEST)
    mira = await engine.join_player(chat, MIRA, "Mira Holt")
    assert mira == PlayerInfo(MIRA, "Mira Holt", is_owner=False, active=True)
    assert [p.player_id for p in await engine.players(chat)] == [TOBIN, MIRA]

    first = await collect(engine.post_turn(chat, "Wren, is the lamp lit?", "$1"))
    plot.speaker = GUEST
    second = await collect(engine.post_turn(chat, "Odile, any ships?", "$2", player=MIRA))
    assert {u.answering for u in first} == {(TOBIN,)} and first[-1].speaker_id == HOST
    assert {u.answering for u in second} == {(MIRA,)} and second[-1].speaker_id == GUEST

    prompt = plot.fake.calls_for("narrate")[-1]
    system, said = prompt.messages[0]["content"], prompt_text(prompt)
    assert f"in an ongoing roleplay with Tobin Reyes and Mira Holt, with {HOST_NAME} also in the scene" in system
    assert f"never speak, act or decide for Tobin Reyes, Mira Holt or {HOST_NAME}" in system
    assert "- Tobin Reyes (a player)\n- Mira Holt (a player)" in system
    assert "Tobin Reyes: Wren, is the lamp lit?" in said and "Mira Holt: Odile, any ships?" in said
    assert prompt.stop[:2] == ["\nTobin Reyes:", "\nMira Holt:"]
    turns = await engine.export_story(chat)
    assert [(t.role, t.speaker_name) for t in turns.turns if t.role == "user"] == [("user", "Tobin Reyes"),
                                                                                   ("user", "Mira Holt")]


async def test_a_player_who_joins_later_remembers_only_what_followed(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    plot.reply = "The lamp burns tokLAMPx."
    await collect(engine.post_turn(chat, "Tell me of the lamp tokEARLYx.", "$1"))
    await engine.join_player(chat, MIRA, "Mira")
    plot.reply = "The ships come tokSHIPx."
    await collect(engine.post_turn(chat, "And the ships?", "$2", player=MIRA))
    await settle(engine, chat)

    for token in ("tokEARLYx", "tokLAMPx"):
        assert await engine.search_memory(chat, "you", token) != []  # Tobin was there
        assert await engine.search_memory(chat, "you", token, player=MIRA) == []  # Mira was not
    assert await engine.search_memory(chat, "you", "tokSHIPx", player=MIRA) != []
    assert await engine.search_memory(chat, "you", "tokSHIPx") != []
    recent = [m.text for m in await engine.recent_memories(chat, "me", player=MIRA)]
    assert len(recent) == 1 and "Mira said" in recent[0]

    # Her out-of-character question is answered knowing only the lines she saw.
    await collect(engine.post_turn(chat, "(( What happened before I came? ))", "$3", player=MIRA))
    asked = prompt_text(plot.fake.calls_for("ooc")[-1])
    assert "tokSHIPx" in asked and "tokLAMPx" not in asked and "tokEARLYx" not in asked
    assert asked.splitlines()[-1].startswith("Mira, out of character:")

    # Her character's scene summary is hers only if she saw every line it tells of.
    await engine.close_scene(chat)
    await settle(engine, chat)
    [summary] = await memory_state.recent_memories_for(engine.db, chat, HOST, 5, kind="summary")
    assert TOBIN in summary.witnesses and MIRA not in summary.witnesses


async def test_a_player_who_left_is_refused_and_keeps_what_they_witnessed(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await engine.join_player(chat, MIRA, "Mira")
    plot.reply = "Noted tokBYEx."
    await collect(engine.post_turn(chat, "I must go soon.", "$1", player=MIRA))
    assert await engine.leave_player(chat, MIRA) is True
    assert await engine.leave_player(chat, MIRA) is False
    before = await row_counts(engine.db)
    with pytest.raises(NotAPlayerError):
        await engine.receive_line(chat, "Wait!", "$2", player=MIRA)
    with pytest.raises(NotAPlayerError):
        await collect(engine.post_turn(chat, "Wait!", "$2", player=MIRA))
    with pytest.raises(NotAPlayerError):
        await collect(engine.post_turn(chat, "(( hello? ))", "$3", player=MIRA))
    with pytest.raises(NotAPlayerError):
        await engine.receive_line(chat, "Hi.", "$4", player="@stranger:hs")
    assert await row_counts(engine.db) == before  # nothing written
    assert await engine.search_memory(chat, "you", "tokBYEx", player=MIRA) != []  # she keeps it
    assert [(p.player_id, p.active) for p in await engine.players(chat)] == [(TOBIN, True), (MIRA, False)]

    # A line of hers already in the story is still answered (posted again: the same reply).
    again = await collect(engine.post_turn(chat, "I must go soon.", "$1", player=MIRA))
    assert [u.text for u in again] == ["Noted tokBYEx."] and again[-1].answering == (MIRA,)

    plot.reply = "Later tokLATERx."
    await collect(engine.post_turn(chat, "She is gone.", "$5"))
    await engine.join_player(chat, MIRA, "Someone Else")  # back, with the persona she had
    assert (await engine.players(chat))[1] == PlayerInfo(MIRA, "Mira", is_owner=False, active=True)
    assert await engine.search_memory(chat, "you", "tokLATERx", player=MIRA) == []  # said while she was away

    with pytest.raises(OwnerCannotLeaveError):
        await engine.leave_player(chat, TOBIN)


async def test_a_joining_player_gets_a_persona_and_bad_ids_are_refused(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await engine.set_persona("@ana:hs", "Ana Reyes", "a cartographer")
    assert (await engine.join_player(chat, "@ana:hs", "ana")).name == "Ana Reyes"  # her own persona
    assert (await engine.join_player(chat, "@bo:hs", "  Bo  the  Bold ")).name == "Bo the Bold"
    assert (await engine.join_player(chat, "@cy:hs")).name == "cy"
    assert (await engine.persona("@ana:hs", chat)).description == "a cartographer"
    assert (await engine.join_player(chat, TOBIN, "whoever")).name == "Tobin Reyes"  # the owner plays already
    for bad in ("", "   ", "you", "You", HOST, "x" * 201, "@a\x00:hs"):
        with pytest.raises(InvalidInputError):
            await engine.join_player(chat, bad, "Bad")
    assert len(await engine.players(chat)) == 4


async def test_only_its_author_changes_a_line_and_owed_lines_name_their_player(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await engine.join_player(chat, MIRA, "Mira")
    assert await engine.receive_line(chat, "Hello all.", "$1", player=MIRA)
    assert [(o.source_id, o.player) for o in await engine.owed_lines()] == [("$1", MIRA)]
    await collect(engine.post_turn(chat, "Hello all.", "$1", player=MIRA))
    with pytest.raises(NotYourLineError):
        await engine.edit_line(chat, "$1", "Goodbye all.")  # Tobin's edit of Mira's line
    with pytest.raises(NotYourLineError):
        await engine.take_back_line(chat, "$1")
    rewound = await engine.edit_line(chat, "$1", "Goodbye all.", player=MIRA)
    assert rewound.steps == 1
    updates = await collect(engine.post_turn(chat, "Goodbye all.", "$1", player=MIRA))
    assert updates[-1].answering == (MIRA,)
    assert (await engine.take_back_line(chat, "$1", player=MIRA)).line_sources == ("$1",)


async def test_a_story_of_one_player_reads_as_before(open_engine) -> None:
    engine, plot, chat = await story(open_engine, guest=GUEST)
    await collect(engine.post_turn(chat, "Wren, hello.", "$1"))
    call = plot.fake.calls_for("narrate")[-1]
    assert call.messages[0]["content"].startswith(f"You are {HOST_NAME} in an ongoing roleplay with Tobin Reyes, "
                                                  f"with {GUEST_NAME} also in the scene.")
    assert "- Tobin Reyes (the player)" in call.messages[0]["content"]
    assert call.messages[-1]["content"].startswith("Wren, hello.")  # one player's line: not named
