"""The prompt budget is `llm.context_tokens`, and every share of it scales with it: a larger
context gives each section more room and shows more of the dialogue."""

from __future__ import annotations

from core.llm import FakeLLM
from core.services.budget import SECTION_SHARES
from core.services.dialogue import load_cast
from core.services.prompt import assemble_prompt
from core.services.tokens import estimate_prompt_tokens
from tests.core.pipeline.conftest import HOST, collect


async def test_the_budget_shares_scale_with_the_context(open_engine) -> None:
    engine = await open_engine(FakeLLM({"narrate": "Aye."}))
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    for n in range(90):
        await collect(engine.post_turn(chat, f"Line {n}.", f"${n}"))
    cast = await load_cast(engine.db, chat)
    small, large = [await assemble_prompt(engine.db, cast, cast.host, user_turn=None, budget_tokens=budget)
                    for budget in (3000, 12000)]
    for name in set(SECTION_SHARES) - {"examples"}:  # examples only while the whole story fits
        assert large.section_budgets[name] > 4 * small.section_budgets[name], name
    assert estimate_prompt_tokens(small.messages) <= 3000 and estimate_prompt_tokens(large.messages) <= 12000
    assert small.dialogue_turns <= 40 < large.dialogue_turns  # the turn cap grows with the context too
