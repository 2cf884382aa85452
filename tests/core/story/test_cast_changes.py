"""Characters come and go: one invited mid-story makes its entrance and knows nothing said before
it came; the speaker is chosen among everyone present; one dismissed leaves and keeps its memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.engine import MAX_CHARACTERS, CharacterInfo
from core.errors import InvalidCastError, UnknownCharacterError
from core.eventlog import replay
from core.state import memory as memory_state
from tests.core.conftest import check_fts_index, dump_projections, row_counts
from tests.core.story.conftest import (
    GUEST,
    HOST,
    HOST_NAME,
    THIRD,
    THIRD_NAME,
    Plot,
    collect,
    prompt_text,
    settle,
)

OWNER = "@p:hs"


async def story(open_engine):
    plot = Plot()
    engine = await open_engine(plot.fake)
    chat = (await engine.create_chat(owner=OWNER, host=HOST, guest=GUEST)).chat_id
    await engine.greeting(chat)
    return engine, plot, chat


async def test_a_character_invited_mid_story_knows_nothing_said_before_it_came(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    plot.reply = "The salt is in the cellar tokSALTx."
    await collect(engine.post_turn(chat, "Wren, where is the salt tokASKx?", "$1"))
    await settle(engine, chat)

    plot.reply = "*Tamsin steps in, shaking off the rain.* Peace on this house."
    entrance = await collect(engine.invite_character(chat, THIRD_NAME))
    assert entrance[-1].done and entrance[-1].speaker_id == THIRD and entrance[-1].answering == ()
    assert [c.character_id for c in await engine.cast(chat)] == [HOST, GUEST, THIRD]
    call = plot.fake.calls_for("narrate")[-1]
    assert f"Write {THIRD_NAME}'s entrance" in call.messages[-1]["content"]
    assert "tokSALTx" not in prompt_text(call) and "tokASKx" not in prompt_text(call)
    for token in ("tokSALTx", "tokASKx"):
        assert await engine.search_memory(chat, THIRD, token) == []
        assert await engine.search_memory(chat, HOST, token) != []

    # A line that names nobody, after an entrance, goes to the host, without a routing call.
    plot.reply = "Come in out of the rain tokWELCOMEx."
    reply = await collect(engine.post_turn(chat, "Who is at the door?", "$2"))
    assert reply[-1].speaker_id == HOST and plot.fake.calls_for("addressee") == []
    # Named, the newcomer answers: its prompt holds its entrance and what followed, nothing before.
    plot.reply = "I came for the salt tokLATEx."
    reply = await collect(engine.post_turn(chat, "Tamsin, why are you here?", "$3"))
    assert reply[-1].speaker_id == THIRD and reply[-1].answering == (OWNER,)
    seen = prompt_text(plot.fake.calls_for("narrate")[-1])
    assert "Peace on this house" in seen and "tokWELCOMEx" in seen and "tokSALTx" not in seen
    assert f"never speak, act or decide for p, {HOST_NAME} or Captain Odile Marchetti" in seen
    await settle(engine, chat)
    assert await engine.search_memory(chat, THIRD, "tokLATEx") != []
    await engine.close_scene(chat)
    await settle(engine, chat)
    [summary] = await memory_state.recent_memories_for(engine.db, chat, THIRD, 5, kind="summary")
    assert "tokSALTx" not in summary.text  # its summary tells only what it witnessed

    before = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == before
    await check_fts_index(engine.db)


async def test_an_entrance_uses_a_v3_cards_group_greeting(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    ilse = await engine.import_character((Path(__file__).parents[2] / "data" / "ilse_varga_v3.json").read_text())
    plot.reply = "*Ilse ties up the boat.*"
    await collect(engine.invite_character(chat, ilse.character_id))
    instruction = plot.fake.calls_for("narrate")[-1].messages[-1]["content"]
    assert "*Ilse waves from the boat.* Both of you look like you've seen a ghost." in instruction
    assert "Morning, p!" not in instruction  # not its one-to-one greeting


async def test_the_cast_is_bounded_and_bad_invitations_change_nothing(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await collect(engine.invite_character(chat, THIRD))
    extra = await engine.import_character('{"name": "Pell Quay", "description": "A ferryman."}')
    assert len(await engine.cast(chat)) == 3 < MAX_CHARACTERS
    await collect(engine.invite_character(chat, "pell quay"))
    assert len(await engine.cast(chat)) == MAX_CHARACTERS == 4
    fifth = await engine.import_character('{"name": "Ros Vane", "description": "A smuggler."}')
    before = await row_counts(engine.db)
    with pytest.raises(InvalidCastError, match="at most 4"):
        await collect(engine.invite_character(chat, fifth.character_id))
    with pytest.raises(InvalidCastError, match="already"):
        await collect(engine.invite_character(chat, GUEST))
    with pytest.raises(UnknownCharacterError):
        await collect(engine.invite_character(chat, "nobody at all"))
    assert await row_counts(engine.db) == before
    assert extra.character_id in [c.character_id for c in await engine.cast(chat)]


async def test_a_dismissed_character_leaves_keeps_its_memory_and_may_come_back(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    plot.speaker = GUEST
    plot.reply = "Ships at dawn tokSHIPSx."
    await collect(engine.post_turn(chat, "Odile, any ships?", "$1"))
    odile = (await engine.cast(chat))[1]
    assert await engine.dismiss_character(chat, "Captain Odile Marchetti") == odile == CharacterInfo(
        GUEST, "Captain Odile Marchetti", odile.description)
    assert [c.character_id for c in await engine.cast(chat)] == [HOST]
    plot.reply = "She is gone tokGONEx."
    reply = await collect(engine.post_turn(chat, "Odile? Are you there?", "$2"))
    assert reply[-1].speaker_id == HOST  # the only one present answers
    await settle(engine, chat)
    assert await engine.search_memory(chat, GUEST, "tokSHIPSx") != []  # she keeps what she witnessed
    assert await engine.search_memory(chat, GUEST, "tokGONEx") == []  # and missed what followed
    with pytest.raises(InvalidCastError, match="host"):
        await engine.dismiss_character(chat, HOST)
    with pytest.raises(InvalidCastError, match="not in this story"):
        await engine.dismiss_character(chat, GUEST)
    with pytest.raises(UnknownCharacterError):
        await engine.dismiss_character(chat, "nobody at all")

    plot.reply = "*Odile is back.*"
    await collect(engine.invite_character(chat, GUEST))
    plot.reply = "As I said: ships tokAGAINx."
    await collect(engine.post_turn(chat, "Odile, what did you say of ships?", "$3"))
    seen = prompt_text(plot.fake.calls_for("narrate")[-1])
    assert "tokSHIPSx" in seen and "tokGONEx" not in seen
    assert (await engine.status(chat)).guest_name == "Captain Odile Marchetti"


async def test_a_reply_calling_one_of_several_others_gets_its_short_answer(open_engine) -> None:
    engine, plot, chat = await story(open_engine)
    await collect(engine.invite_character(chat, THIRD))
    replies = iter(["Odile, tell them about the wreck.", "*Odile shrugs.* It sank."])
    plot.fake.set_route("narrate", lambda _messages: next(replies))
    updates = [u for u in await collect(engine.post_turn(chat, "Wren, what happened?", "$1")) if u.done]
    assert [u.speaker_id for u in updates] == [HOST, GUEST]
