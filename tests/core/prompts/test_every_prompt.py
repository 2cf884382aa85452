"""Every prompt of a long random story with real cards: what any strict model server accepts.

Roles alternate (the strict fake refuses anything else), no macro survives, the player's persona
name is in every prompt, no JSON template with placeholder values, and every budgeted section of
every reply prompt stays within its budget.
"""

from __future__ import annotations

import random
import re
from datetime import timedelta

from core.errors import NothingToContinueError, NothingToRegenerateError, NothingToRewindError
from core.llm.roles import role_order_error
from core.services import replying
from core.services.prompt import SECTION_SHARES
from core.services.tokens import estimate_prompt_tokens
from core.state.turns import latest_line
from tests.core.pipeline.conftest import collect
from tests.core.prompts.scripted import DATA, OWNER, PERSONA, scripted_llm

LEFTOVER_MACRO = re.compile(r"\{\{|\}\}|<USER>|<BOT>|<CHAR>", re.IGNORECASE)
PLACEHOLDER_JSON = re.compile(r'"\w+"\s*:\s*(0|""|\[\]|\{\})\s*[,}]')
LINES = ["I look out at the sea.", "Ilse, what news today?", "Maren, is the lamp trimmed?", "I need to sleep for a few hours.",
         "Tell me about the Alba.", "Ilse, who wrote this letter?", "The market is tomorrow at noon, right?",
         "I help carry the oil up the stairs.", "I wave.", "What does the buoy mean?"]


async def test_every_prompt_of_a_long_random_story_is_one_a_strict_server_accepts(open_engine, monkeypatch):
    reports = []
    assemble = replying.assemble_prompt

    async def recording(*args, **kwargs):
        report = await assemble(*args, **kwargs)
        reports.append(report)
        return report

    monkeypatch.setattr(replying, "assemble_prompt", recording)
    fake = scripted_llm()  # strict: a prompt out of role order raises
    engine = await open_engine(fake, budget_tokens=1500)
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    await engine.set_persona(OWNER, *PERSONA)
    chat = (await engine.create_chat(owner=OWNER, host=maren.character_id, guest=ilse.character_id)).chat_id
    await engine.greeting(chat)
    await engine.set_note(chat, "Keep {{char}} gruff but kind to {{user}}.")
    rng = random.Random(16)
    for step in range(90):
        action = rng.random()
        try:
            if action < 0.66:
                await collect(engine.post_turn(chat, rng.choice(LINES), f"$t{step}"))
            elif action < 0.72:
                await collect(engine.regenerate(chat))
            elif action < 0.76:
                await engine.close_scene(chat)
            elif action < 0.80:
                await collect(engine.meanwhile(chat, maren.character_id, ilse.character_id, rng.choice(["", "the buoy"])))
            elif action < 0.84:
                await engine.skip(chat, timedelta(hours=rng.randint(1, 9)))
            elif action < 0.88:
                await collect(engine.continue_reply(chat))
            elif action < 0.91:
                await collect(engine.post_turn(chat, "((Is Maren hiding something?))", f"$ooc{step}"))
            elif action < 0.95 and (latest := await latest_line(engine.db, chat)) is not None:
                edited = rng.choice(LINES)
                await engine.edit_line(chat, latest.source_id, edited)
                await collect(engine.post_turn(chat, edited, latest.source_id))
            elif action < 0.97:
                await engine.rewind(chat)
            else:
                await engine.show_take(chat, 1)
        except (NothingToContinueError, NothingToRewindError, NothingToRegenerateError):
            pass

    purposes = {call.purpose for call in fake.calls}
    assert {"narrate", "addressee", "scene_close", "threads", "lifecycle", "meanwhile", "skip", "ooc"} <= purposes
    assert len(fake.calls) > 150 and not fake.unplanned
    # Background calls (summaries, threads, lifecycle, relationships) too: their failures are
    # logged, not raised, so the strict fake's refusal alone would not fail this test.
    assert [c.purpose for c in fake.calls if role_order_error(c.messages) is not None] == []
    for call in fake.calls:
        text = "\n".join(m["content"] for m in call.messages)
        where = f"{call.purpose} prompt #{fake.calls.index(call)}"
        assert not LEFTOVER_MACRO.search(text), where
        assert PERSONA[0] in text, where
        assert not PLACEHOLDER_JSON.search(text), where
        assert " you (the player)" not in text and "You said" not in text and "\nYou:" not in text, where
    for report in reports:
        assert estimate_prompt_tokens(report.messages) <= report.budget_tokens
        for section in SECTION_SHARES:
            assert report.section_tokens[section] <= report.section_budgets[section], section
