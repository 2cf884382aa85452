"""Engine.import_character: a card becomes a character a story can start with; junk is refused, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.engine import Engine
from core.errors import CardImportError
from core.llm import make_llm_client


async def test_import_then_start_a_story_and_refuse_junk(tmp_path: Path) -> None:
    engine = await Engine.open(tmp_path / "engine.sqlite3", make_llm_client("demo", word_delay_s=0))
    card = {
        "spec": "chara_card_v3", "spec_version": "3.0",
        "data": {"name": "Nyx", "description": "A cartographer.", "first_mes": "The coast moved."},
    }
    nyx = await engine.import_character(json.dumps(card).encode())
    assert (nyx.character_id, nyx.name) == ("nyx", "Nyx")
    chat = await engine.create_chat(owner="@a:localhost", host=nyx.character_id)
    assert (await engine.greeting(chat.chat_id)).text == "The coast moved."

    before = len(await engine.list_characters())
    for junk in (b"{not json", b"\x89PNG\r\n\x1a\nnope", json.dumps({"data": {}}).encode()):
        with pytest.raises(CardImportError):
            await engine.import_character(junk)
    assert len(await engine.list_characters()) == before
    await engine.close()
