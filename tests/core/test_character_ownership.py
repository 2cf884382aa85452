"""What a player owns stays theirs: a card one player imports is listed and usable only for them
(in their stories) until they share it; the built-in characters are everyone's."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInputError, UnknownCharacterError
from core.eventlog import replay
from core.llm import FakeLLM
from tests.core.conftest import dump_projections

ILSE = (Path(__file__).resolve().parent.parent / "data" / "ilse_varga_v3.json").read_text()
ANA, BO = "@ana:hs", "@bo:hs"


async def ids(engine, **player) -> set[str]:
    return {c.character_id for c in await engine.list_characters(**player)}


async def test_a_card_imported_by_one_player_is_not_listed_for_another_until_shared(open_engine) -> None:
    engine = await open_engine(FakeLLM({"narrate": "*waves*"}))
    ilse = await engine.import_character(ILSE, owner=ANA)
    assert (ilse.owner, ilse.shared) == (ANA, False)
    assert ilse.character_id in await ids(engine, player=ANA)
    assert ilse.character_id not in await ids(engine, player=BO)
    assert ilse.character_id in await ids(engine)  # the operator's view: everything
    assert "wren-halloway" in await ids(engine, player=ANA) & await ids(engine, player=BO)  # built-ins: everyone's

    # Bo can neither start a story with it nor bring it into his own; Ana can.
    with pytest.raises(UnknownCharacterError):
        await engine.create_chat(owner=BO, host=ilse.character_id)
    with pytest.raises(UnknownCharacterError):
        await engine.create_chat(owner=BO, host="wren-halloway", guest=ilse.character_id)
    bos = await engine.create_chat(owner=BO, host="wren-halloway")
    with pytest.raises(UnknownCharacterError):
        async for _ in engine.invite_character(bos.chat_id, ilse.name):
            pass
    anas = await engine.create_chat(owner=ANA, host=ilse.character_id)
    # In Ana's story, her card is at home, whoever plays there.
    await engine.join_player(anas.chat_id, BO, "Bo")
    assert [c.character_id for c in await engine.cast(anas.chat_id)] == [ilse.character_id]

    # Bo's own import of the same card is his, under an id of its own: Ana's card is untouched.
    his = await engine.import_character(ILSE, owner=BO)
    assert his.character_id != ilse.character_id and his.owner == BO
    assert {c.character_id: c.owner for c in await engine.list_characters()}[ilse.character_id] == ANA
    assert his.character_id not in await ids(engine, player=ANA)

    # Only its owner shares it; then everyone lists and uses it.
    with pytest.raises(UnknownCharacterError):
        await engine.share_character(BO, ilse.character_id)
    shared = await engine.share_character(ANA, ilse.name)
    assert (shared.owner, shared.shared) == (ANA, True)
    assert await engine.share_character(ANA, ilse.character_id) == shared  # once is enough
    assert ilse.character_id in await ids(engine, player=BO)
    await engine.create_chat(owner=BO, host=ilse.character_id)
    wren = await engine.share_character(BO, "Wren Halloway")  # a built-in is everyone's already
    assert (wren.owner, wren.shared) == (None, False)

    with pytest.raises(InvalidInputError):
        await engine.import_character(ILSE, owner="you")

    before = await dump_projections(engine.db)
    await replay(engine.db)
    assert await dump_projections(engine.db) == before


async def test_a_meanwhile_scene_only_brings_in_characters_the_story_may_use(open_engine) -> None:
    engine = await open_engine(FakeLLM({"meanwhile": "Quiet.", "narrate": "Hm."}))
    ilse = await engine.import_character(ILSE, owner=ANA)
    bos = await engine.create_chat(owner=BO, host="wren-halloway")
    with pytest.raises(UnknownCharacterError):
        async for _ in engine.meanwhile(bos.chat_id, "Wren Halloway", ilse.name):
            pass
    anas = await engine.create_chat(owner=ANA, host="wren-halloway")
    lines = [u async for u in engine.meanwhile(anas.chat_id, "Wren Halloway", ilse.name)]
    assert lines and lines[-1].done
