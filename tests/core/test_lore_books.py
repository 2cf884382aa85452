"""Lorebooks in a story: card books and world info imported, bound to who knows each entry.

A character's prompt gets only lore it knows: card book entries are its own card's, world info
entries are common unless a character filter names who knows them, and an entry a character
does not know can neither appear nor call up other entries through recursion.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.engine import Engine
from core.errors import ChatNotFoundError, LoreImportError
from core.eventlog import replay
from core.llm import FakeLLM
from core.services.lorebook import import_card_books, lore_for_prompt
from core.services.macros import MacroValues
from core.state import world

DATA = Path(__file__).resolve().parents[1] / "data"
GULLROCK = (DATA / "world_info_gullrock.json").read_bytes()
ALICE = "@alice:localhost"


@pytest.fixture
async def story(open_engine) -> tuple[Engine, str, str, str]:
    """(engine, chat id, Maren's id, Ilse's id): Maren hosts, Ilse is the guest."""
    engine = await open_engine(FakeLLM())
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    chat = await engine.create_chat(owner=ALICE, host=maren.character_id, guest=ilse.character_id)
    return engine, chat.chat_id, maren.character_id, ilse.character_id


async def lore_of(engine: Engine, chat_id: str, who: str, *texts: str) -> list[str]:
    return await lore_for_prompt(engine.db, chat_id, who, list(texts))


async def event_count(engine: Engine) -> int:
    rows = await engine.db.reader.fetch_all("SELECT count(*) FROM events")
    return rows[0][0]


async def test_card_books_come_with_their_characters_known_only_by_them(story) -> None:
    engine, chat_id, maren, ilse = story
    characters = [c for c in await world.list_characters(engine.db) if c.character_id in (maren, ilse)]
    books: dict[str, list[str]] = {}  # create_chat brought each card's book into the story
    for entry in await engine.lore(chat_id):
        books.setdefault(entry.book, []).append(entry.known_by)
    assert books == {"Gullrock (Maren Ashdown's card)": ["only", "only"],
                     "Post routes (Ilse Varga of the Northern Post's card)": ["only"]}
    assert await import_card_books(engine.db, chat_id, characters) == []  # once per story

    listed = {e.title: e for e in await engine.lore(chat_id)}
    assert listed["shipyard"].known_by == "only"
    assert listed["shipyard"].knowers == ("Ilse Varga of the Northern Post",)
    assert listed["wreck"].knowers == ("Maren Ashdown",)

    assert await lore_of(engine, chat_id, ilse, "Is the shipyard open?") == [
        "The shipyard on Kell builds and repairs the island boats."
    ]
    assert await lore_of(engine, chat_id, maren, "Is the shipyard open?") == []
    assert await lore_of(engine, chat_id, maren, "Tell me about the wreck.") == [
        "The supply boat Alba broke up on the Teeth, the reef north of Gullrock."
    ]
    assert await lore_of(engine, chat_id, ilse, "Tell me about the wreck.") == []


async def test_a_card_book_that_cannot_be_read_never_stops_a_story(story) -> None:
    engine, chat_id, maren, _ = story
    character = await world.get_character(engine.db, maren)
    assert character is not None
    broken = {"spec": "chara_card_v2", "data": {"name": "Maren", "character_book": {"entries": [{"keys": 5, "content": "x"}]}}}
    before = await engine.lore(chat_id)
    other = dataclasses.replace(character, character_id="maren-broken", raw_card=broken)
    assert await import_card_books(engine.db, chat_id, [other]) == []
    assert await engine.lore(chat_id) == before


async def test_the_gullrock_world_info_file_imports_with_its_filters(story) -> None:
    engine, chat_id, maren, ilse = story
    result = await engine.import_lore(chat_id, GULLROCK, "world_info_gullrock.json")
    assert (result.book, result.entries, result.common, result.private, result.skipped, result.replaced) == (
        "world_info_gullrock", 9, 7, 2, 0, False,
    )
    listed = {e.title: e for e in await engine.lore(chat_id)}
    assert listed["Maren's secret"].known_by == "only" and listed["Maren's secret"].knowers == ("Maren Ashdown",)
    assert listed["Mainland rumour (everyone but Maren)"].known_by == "except"
    assert listed["Gullrock (always)"].constant and listed["Gullrock (always)"].known_by == "everyone"
    assert not listed["Ghost story (switched off)"].enabled
    assert listed["The Teeth (regex key)"].keys == (r"/\b(the )?teeth\b|\breefs?\b/i",)

    again = await engine.import_lore(chat_id, GULLROCK, "world_info_gullrock.json")
    assert again.replaced and len([e for e in await engine.lore(chat_id) if e.book == "world_info_gullrock"]) == 9


async def test_world_info_activates_for_each_character_by_what_it_knows(story) -> None:
    engine, chat_id, maren, ilse = story
    await engine.import_lore(chat_id, GULLROCK, "world_info_gullrock.json")
    rock = "Gullrock is a bare granite rock"

    for who in (maren, ilse):
        found = await lore_of(engine, chat_id, who, "Good morning.")
        assert len(found) == 1 and found[0].startswith(rock)  # the constant entry only

    lamp = await lore_of(engine, chat_id, ilse, "Can I see the lamp?")
    assert [t.split(" ")[:3] for t in lamp] == [["Gullrock", "is", "a"], ["The", "lamp", "room"], ["Halvard", "Pike", "kept"]]

    teeth = " ".join(await lore_of(engine, chat_id, ilse, "Breakers over the Teeth."))
    assert "reef of black rocks" in teeth and "foghorn" in teeth  # the regex key, then the gale it mentions

    assert not any("supply boat is due" in t for t in await lore_of(engine, chat_id, ilse, "A boat!"))
    assert any("supply boat is due" in t for t in await lore_of(engine, chat_id, ilse, "The boat is late."))
    assert not any("drowned keeper" in t for t in await lore_of(engine, chat_id, ilse, "a ghost!"))

    secret = "tore the page"
    assert any(secret in t for t in await lore_of(engine, chat_id, maren, "Where is the logbook?"))
    assert not any(secret in t for t in await lore_of(engine, chat_id, ilse, "Where is the logbook?"))
    rumour = "In Portkell they say"
    assert any(rumour in t for t in await lore_of(engine, chat_id, ilse, "Any rumour from Portkell?"))
    assert not any(rumour in t for t in await lore_of(engine, chat_id, maren, "Any rumour from Portkell?"))


def world_info(*entries: dict) -> bytes:
    return json.dumps({"entries": {str(i): {"uid": i, **e} for i, e in enumerate(entries)}}).encode()


async def test_an_entry_a_character_does_not_know_calls_up_nothing_for_it(story) -> None:
    engine, chat_id, maren, ilse = story
    await engine.import_lore(chat_id, world_info(
        {"key": ["logbook"], "content": "The light was dark for eleven minutes.",
         "characterFilter": {"isExclude": False, "names": ["Maren Ashdown"], "tags": []}},
        {"key": ["eleven minutes"], "content": "Eleven dark minutes are enough to lose a ship."},
    ), "secrets.json")
    assert len(await lore_of(engine, chat_id, maren, "the logbook")) == 2
    assert await lore_of(engine, chat_id, ilse, "the logbook") == []


async def test_filters_by_tag_and_macros_in_keys_and_contents(story) -> None:
    engine, chat_id, maren, ilse = story
    await engine.import_lore(chat_id, world_info(
        {"key": ["light"], "content": "Keepers know the light's moods.",
         "characterFilter": {"isExclude": False, "names": [], "tags": ["lighthouse"]}},
        {"key": ["{{char}}"], "content": "{{char}} is known to {{user}}."},
    ), "tags.json")
    assert await lore_of(engine, chat_id, maren, "the light") == ["Keepers know the light's moods."]
    assert await lore_of(engine, chat_id, ilse, "the light") == []
    found = await lore_for_prompt(engine.db, chat_id, ilse, ["Hello, Ilse"], macros=MacroValues(char="Ilse", user="Ann"))
    assert found == ["Ilse is known to Ann."]


@pytest.mark.parametrize(("data", "says"), [
    (b"{not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "JSON list"),
    (b'{"name": "x"}', "no `entries`"),
    (b'{"entries": {}}', "no entries"),
    (b'{"entries": {"0": "lamp"}}', "entry 1 is not an object"),
    (b'{"entries": {"0": {"key": 5, "content": "x"}}}', "keys of entry 1"),
    (b'{"entries": {"0": {"key": ["a"], "content": "x", "order": "soon"}}}', "order of entry 1"),
    (b'{"entries": {"0": {"key": ["a"], "content": ""}}}', "none of its entries has any content"),
    (b'{"entries": {"0": {"key": ["a"], "content": "\\ud800"}}}', "broken character"),
    (json.dumps({"spec": "chara_card_v2", "data": {"name": "Nyx"}}).encode(), "character card"),
    (b" " * (2 * 1024 * 1024 + 1), "larger than 2 MiB"),
])
async def test_bad_files_are_refused_with_the_reason_and_nothing_is_written(story, data: bytes, says: str) -> None:
    engine, chat_id, _, _ = story
    before, lore_before = await event_count(engine), await engine.lore(chat_id)
    with pytest.raises(LoreImportError, match=says.replace("(", r"\(")):
        await engine.import_lore(chat_id, data, "bad.json")
    assert await event_count(engine) == before and await engine.lore(chat_id) == lore_before


async def test_importing_into_no_such_chat(story) -> None:
    engine, *_ = story
    with pytest.raises(ChatNotFoundError):
        await engine.import_lore("no-such-chat", GULLROCK, "world_info_gullrock.json")
    with pytest.raises(ChatNotFoundError):
        await engine.lore("no-such-chat")


async def test_replay_rebuilds_the_lore_of_a_story(story) -> None:
    engine, chat_id, maren, ilse = story
    characters = await world.list_characters(engine.db)
    await import_card_books(engine.db, chat_id, [c for c in characters if c.character_id in (maren, ilse)])
    await engine.import_lore(chat_id, GULLROCK, "world_info_gullrock.json")
    await engine.import_lore(chat_id, GULLROCK, "world_info_gullrock.json")
    before = (await engine.lore(chat_id), await lore_of(engine, chat_id, maren, "the logbook and the wreck"))
    await replay(engine.db)
    assert (await engine.lore(chat_id), await lore_of(engine, chat_id, maren, "the logbook and the wreck")) == before
