"""Character Card V2/V3 import from JSON and PNG, unknown fields kept; built-in characters."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from core.characters.builtin import BUILTIN_CHARACTERS, install_builtin_characters
from core.characters.cards import import_card, read_card
from core.errors import CardImportError
from core.state import world
from tests.core.conftest import row_counts

V2_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Mirela Stone",
        "description": "A lighthouse keeper.",
        "personality": "Patient.",
        "scenario": "A storm.",
        "first_mes": "*She lights the lamp.* You're late.",
        "mes_example": "<START>\n{{char}}: Hm.",
        "creator_notes": "For testing.",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": ["Hello there."],
        "character_book": {"entries": [{"keys": ["lamp"], "content": "The lamp is old."}]},
        "tags": ["sea"],
        "creator": "tester",
        "character_version": "1.2",
        "extensions": {"depth_prompt": {"prompt": "x", "depth": 4}, "custom_thing": [1, 2, 3]},
    },
    "vendor_field": {"keep": "me"},
}
V3_CARD = {
    "spec": "chara_card_v3",
    "spec_version": "3.0",
    "data": {
        **{k: v for k, v in V2_CARD["data"].items() if k != "character_book"},
        "name": "Orrin Pike",
        "nickname": "Pike",
        "group_only_greetings": ["Hello, everyone."],
        "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
        "creation_date": 1700000000,
    },
}


def card_png(chunks: dict[str, dict] | None = None, *, image_format: str = "PNG") -> bytes:
    info = PngInfo()
    for key, card in (chunks or {}).items():
        info.add_text(key, base64.b64encode(json.dumps(card).encode()).decode())
    buffer = io.BytesIO()
    extra = {"pnginfo": info} if image_format == "PNG" else {}
    Image.new("RGB", (4, 4), "teal").save(buffer, format=image_format, **extra)
    return buffer.getvalue()


async def test_v2_json_card_keeps_unknown_fields(db):
    character = await import_card(db, json.dumps(V2_CARD).encode())
    assert character.character_id == "mirela-stone"
    assert (character.name, character.spec) == ("Mirela Stone", "chara_card_v2")
    assert character.first_mes == V2_CARD["data"]["first_mes"]
    assert character.alternate_greetings == ("Hello there.",) and character.tags == ("sea",)
    assert character.raw_card == V2_CARD
    stored = await world.get_character(db, "mirela-stone")
    assert stored.raw_card["vendor_field"] == {"keep": "me"}
    assert stored.raw_card["data"]["extensions"]["custom_thing"] == [1, 2, 3]


async def test_v3_json_card(db):
    character = await import_card(db, json.dumps(V3_CARD))
    assert (character.name, character.spec) == ("Orrin Pike", "chara_card_v3")
    assert character.raw_card["data"]["assets"][0]["uri"] == "ccdefault:"
    assert character.raw_card["data"]["nickname"] == "Pike"


async def test_png_with_chara_chunk(db):
    character = await import_card(db, card_png({"chara": V2_CARD}))
    assert character.name == "Mirela Stone" and character.raw_card == V2_CARD


async def test_png_with_ccv3_chunk_is_preferred_over_chara(db):
    character = await import_card(db, card_png({"chara": V2_CARD, "ccv3": V3_CARD}))
    assert character.name == "Orrin Pike" and character.spec == "chara_card_v3"
    only_v3 = await import_card(db, card_png({"ccv3": V3_CARD}))
    assert only_v3.character_id == "orrin-pike-2", "a second import never replaces the first"


async def test_explicit_id_replaces_and_legacy_v1_cards_work(db):
    await import_card(db, {"name": "Old Format", "description": "v1", "first_mes": "Hi"}, character_id="old")
    await import_card(db, {"name": "Old Format", "description": "edited"}, character_id="old")
    old = await world.get_character(db, "old")
    assert (old.spec, old.description, old.first_mes) == ("chara_card_v1", "edited", "")


@pytest.mark.parametrize("data", [
    b"{not json",
    "[1, 2, 3]",
    b"\xff\xfe garbage that is neither",
    card_png(),  # a PNG without a card chunk
    card_png(image_format="JPEG"),
    card_png(image_format="GIF"),
    b"\x89PNG\r\n\x1a\n truncated",
    card_png({"chara": {"spec": "chara_card_v2", "data": "not an object"}}),
    card_png({"chara": {"spec": "chara_card_v2", "data": {"name": "  "}}}),
    card_png({"chara": {"spec": "chara_card_v2", "data": {"description": "no name"}}}),
    json.dumps({"spec": "chara_card_v9", "data": {"name": "x"}}),
    json.dumps({"spec": "chara_card_v2", "data": {"name": "x", "tags": "not-a-list"}}),
])
async def test_malformed_cards_raise_card_import_error_and_write_nothing(db, data):
    before = await row_counts(db)
    with pytest.raises(CardImportError):
        await import_card(db, data)
    assert await row_counts(db) == before


def test_png_chunk_that_is_not_base64_json():
    info = PngInfo()
    info.add_text("chara", "%%% not base64 %%%")
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="PNG", pnginfo=info)
    with pytest.raises(CardImportError):
        read_card(buffer.getvalue())


async def test_null_fields_fall_back_to_defaults(db):
    card = {"spec": "chara_card_v2", "data": {"name": "N", "tags": None, "scenario": None}}
    character = await import_card(db, json.dumps(card))
    assert (character.tags, character.scenario) == ((), "")
    assert character.raw_card == card


async def test_builtin_characters_are_original_complete_and_installed_once(db):
    assert 3 <= len(BUILTIN_CHARACTERS) <= 4
    for character in BUILTIN_CHARACTERS:
        assert character.name and character.description and character.personality
        assert character.scenario and character.first_mes
    added = await install_builtin_characters(db)
    assert {c.character_id for c in added} == {c.character_id for c in BUILTIN_CHARACTERS}
    assert await install_builtin_characters(db) == []
    assert len(await world.list_characters(db)) == len(BUILTIN_CHARACTERS)
