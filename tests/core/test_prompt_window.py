"""The dialogue window of a reply prompt: it moves in blocks, and what leaves it is remembered."""

from __future__ import annotations

from core.llm import FakeLLM
from core.services.prompt_window import BLOCK_TURNS, window_start
from tests.core.conftest import sqlite_only
from tests.core.pipeline.conftest import HOST, collect


def test_the_window_starts_on_a_block_boundary_and_stays_there_while_the_story_grows():
    starts = []
    for total in range(40, 120):  # each turn costs 10; 400 hold 40 turns
        costs = [10] * total
        starts.append(window_start(costs, 0, budget=400, max_turns=60))
    assert all(start % BLOCK_TURNS == 0 for start in starts)
    assert all(total - start <= 40 for total, start in zip(range(40, 120), starts, strict=True))
    moves = sum(1 for a, b in zip(starts, starts[1:], strict=False) if a != b)
    assert moves <= 80 // BLOCK_TURNS + 1  # a move every BLOCK_TURNS turns, not every turn


def test_the_newest_turn_is_kept_and_a_tight_budget_slides_turn_by_turn():
    assert window_start([500], 0, budget=10, max_turns=40) == 0
    costs = [100] * 10  # 300 hold 3 turns: fewer than two blocks
    assert window_start(costs, 0, budget=300, max_turns=40) == 7
    assert window_start(costs, 0, budget=50, max_turns=40) == 9


def test_the_turn_cap_is_met_on_a_block_boundary():
    start = window_start([1] * 100, 0, budget=10_000, max_turns=40)
    assert start % BLOCK_TURNS == 0 and 100 - start <= 40


async def test_exchanges_that_leave_the_window_are_in_the_prompt_as_memories(open_engine):
    fake = FakeLLM({"narrate": lambda m: "Noted, " + m[-1]["content"].split(":")[0].split("\n")[0] + "."})
    engine = await open_engine(fake, budget_tokens=2500)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    for n in range(30):
        await collect(engine.post_turn(chat.chat_id, f"Exchange {n}: the {n}th thing about the harbour " + "and so on " * 12,
                                       f"${n}"))
    last = fake.calls_for("narrate")[-1].messages
    system, dialogue = last[0]["content"], "\n".join(m["content"] for m in last[1:])
    shown = {n for n in range(30) if f"Exchange {n}:" in dialogue}
    remembered = {n for n in range(30) if f"Exchange {n}:" in system}
    assert 29 in shown and 0 not in shown  # the window was cut
    assert "Earlier in this story (Wren Halloway remembers it; these lines are no longer shown):" in system
    first_shown = min(shown)
    # The exchanges just before the window are there, as memories, with no gap up to the window.
    assert set(range(first_shown - 5, first_shown)) <= remembered
    assert not shown & remembered


async def test_consecutive_prompts_share_their_system_message_while_the_window_stays(open_engine):
    fake = FakeLLM({"narrate": "Aye, the lamp is lit."})
    engine = await open_engine(fake, budget_tokens=2500)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    for n in range(24):
        await collect(engine.post_turn(chat.chat_id, f"Line {n} " + "about the tide " * 10, f"${n}"))
    prompts = fake.calls_for("narrate")
    systems = [p.messages[0]["content"] for p in prompts]
    changes = sum(1 for a, b in zip(systems, systems[1:], strict=False) if a != b)
    assert changes <= 24 * 2 // BLOCK_TURNS + 1
    # Between most two turns, the new prompt begins with all of the previous one but its last
    # message (which held that turn's notes); a window that slid every turn would share only the system.
    kept = sum(1 for a, b in zip(prompts, prompts[1:], strict=False) if b.messages[: len(a.messages) - 1] == a.messages[:-1])
    assert kept >= 0.8 * (len(prompts) - 1)


async def test_a_line_that_names_a_time_brings_back_the_memories_of_that_time(open_engine):
    fake = FakeLLM({"narrate": "Mm."})
    engine = await open_engine(fake, budget_tokens=2500)
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await collect(engine.post_turn(chat.chat_id, "Where am I? My head is pounding.", "$first"))
    for n in range(30):
        await collect(engine.post_turn(chat.chat_id, f"Line {n}: the harbour and the boats " + "and so on " * 12, f"${n}"))
    await collect(engine.post_turn(chat.chat_id, "What did I say when I first woke up?", "$ask"))
    prompt = fake.calls_for("narrate")[-1].messages
    system, last = prompt[0]["content"], prompt[-1]["content"]
    assert "My head is pounding" not in system and "My head is pounding" not in "".join(m["content"] for m in prompt[1:-1])
    notes = last.split("What Wren Halloway recalls now:", 1)[1]
    assert "My head is pounding" in notes  # no word in common: recalled by order, as the first thing said


WORDS = [f"{a}{b}" for a in ("brass", "salt", "tin", "oak", "gull", "reef", "kelp", "tar", "flint", "peat")
         for b in ("hook", "lamp", "rope", "bell", "oar", "net", "knot", "mast", "sail", "chart")]


@sqlite_only  # the window's arithmetic, over many stories: the reads it makes run on PostgreSQL in the others
async def test_no_exchange_is_lost_at_the_windows_edge_whatever_the_windows_position(open_engine):
    """100 exchanges; after each, every earlier player line is in the prompt (dialogue, memories of
    lines no longer shown, summaries) or comes back for a line that shares one word with it."""
    fake = FakeLLM({"narrate": "Noted.", "scene_part": "I listened to Tobin talk about the harbour."})
    engine = await open_engine(fake, budget_tokens=2500)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    await engine.greeting(chat)  # so the window's block boundaries fall on replies
    starts = set()
    for n in range(100):
        await collect(engine.post_turn(chat, f"Exchange {n}: I saw the {WORDS[n]} by the harbour " + "and so on " * 12,
                                       f"${n}"))
        prompt = "\n".join(m["content"] for m in fake.calls_for("narrate")[-1].messages)
        starts.add(min(k for k in range(n + 1) if f"Exchange {k}:" in prompt))
        for k in range(n):
            if f"Exchange {k}:" in prompt:
                continue
            probe = await engine.next_prompt(chat, f"Do you remember the {WORDS[k]}?")
            assert f"Exchange {k}:" in "\n".join(m["content"] for m in probe.messages), (
                f"after exchange {n}, exchange {k} ({WORDS[k]}) is nowhere in reach")
    assert len(starts) > 4  # the window moved many times


def test_a_cut_window_starts_on_a_players_line_so_no_exchange_is_split():
    from datetime import datetime

    from core.services.prompt_window import exchange_start
    from core.state.turns import Turn

    def turns(roles: str) -> list[Turn]:
        kinds = {"u": "user", "a": "assistant", "n": "narration"}
        return [Turn(i + 1, "c", 1, kinds[r], "x", "x", None, datetime(2026, 4, 1), False, i + 1, None)  # type: ignore[arg-type]
                for i, r in enumerate(roles)]

    story = turns("auaauanuaua")  # greeting, replies, a guest's short answer, narration after a skip
    for start in range(len(story)):
        chosen = exchange_start(story, start)
        assert story[chosen].role == "user"
        assert chosen >= start or all(t.role != "user" for t in story[start:])
    assert exchange_start(turns("uaa"), 2) == 0  # no line after the cut: back to the last one before it
