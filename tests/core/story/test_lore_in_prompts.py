"""The lorebook in reply prompts: an entry reaches only the characters who know it."""

from __future__ import annotations

from pathlib import Path

from core.llm import FakeLLM
from tests.core.pipeline.conftest import collect

DATA = Path(__file__).parents[2] / "data"
OWNER = "@tobin:hs"
SECRET = "Maren tore the page for the night of the Alba's wreck out of the logbook"
RUMOUR = "In Portkell they say the Gullrock light went dark"


async def test_a_lore_entry_is_seen_only_by_the_characters_who_know_it(open_engine):
    fake = FakeLLM({"narrate": "*A long look.*"})
    engine = await open_engine(fake)
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    chat = await engine.create_chat(owner=OWNER, host=maren.character_id, guest=ilse.character_id)
    await engine.import_lore(chat.chat_id, (DATA / "world_info_gullrock.json").read_bytes(), "world_info_gullrock.json")
    await engine.greeting(chat.chat_id)

    await collect(engine.post_turn(chat.chat_id, "Maren, may I read the logbook? I heard a rumour in Portkell.", "$1"))
    await collect(engine.post_turn(chat.chat_id, "Ilse, what about the logbook, and that rumour from Portkell?", "$2"))
    maren_prompt, ilse_prompt = ("\n".join(m["content"] for m in c.messages) for c in fake.calls_for("narrate"))

    assert "Gullrock is a bare granite rock" in maren_prompt and "Gullrock is a bare granite rock" in ilse_prompt
    assert SECRET in maren_prompt and SECRET not in ilse_prompt  # known only to Maren
    assert RUMOUR in ilse_prompt and RUMOUR not in maren_prompt  # known to all but Maren
    last = fake.calls_for("narrate")[0].messages[-1]["content"]
    assert "(lore):" in last and SECRET in last  # in this turn's notes, after the player's line
