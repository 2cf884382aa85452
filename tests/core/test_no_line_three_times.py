"""No line three times: a line the dialogue window shows is nowhere else in the prompt (not in a
summary's key quotes, not recalled); a summary is there only for lines the window no longer
shows; recalled memories say different things."""

from __future__ import annotations

from core.llm import FakeLLM
from core.services.scenes import KEY_QUOTES_HEADER
from tests.core.conftest import PLAYER
from tests.core.pipeline.conftest import HOST, HOST_NAME, collect


def summary(messages) -> str:
    return "I spent the evening with p at the harbour, mending nets and counting gulls."


def dialogue_and_rest(messages) -> tuple[list[str], str]:
    """The dialogue's lines (each message's paragraphs, without the notes) and everything else."""
    lines, rest = [], messages[0]["content"]
    for message in messages[1:]:
        said, _, notes = message["content"].partition("\n\n[Story notes for")
        lines += [line for line in said.split("\n\n") if line.strip()]
        rest += "\n" + notes
    return lines, rest


async def test_a_scene_summary_and_its_quotes_are_there_only_for_lines_the_window_no_longer_shows(open_engine):
    fake = FakeLLM({"narrate": lambda m: f"Aye, {m[-1]['content'].split(':')[0].lower()}, I hear you.",
                    "scene_close": summary, "threads": {}})
    engine = await open_engine(fake, budget_tokens=2200)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    for n in range(14):
        await collect(engine.post_turn(chat, f"Net {n}: the knots hold " + "and hold " * 10, f"$a{n}"))
    await engine.close_scene(chat)
    for n in range(40):
        await collect(engine.post_turn(chat, f"Gull {n}: one more " + "and more " * 10, f"$b{n}"))
        messages = fake.calls_for("narrate")[-1].messages
        lines, rest = dialogue_and_rest(messages)
        shown_nets = [line for line in lines if line.startswith("Net ")]
        for line in lines:
            assert " ".join(line.split())[:60] not in " ".join(rest.split()), f"gull {n}: {line[:40]!r} twice"
        system = messages[0]["content"]
        if shown_nets and any(line.startswith("Net 0:") for line in lines):
            assert "mending nets" not in system  # the window shows the whole scene: no summary of it
        if not any(line.startswith("Net 0:") for line in lines):
            assert "mending nets" in system  # its first lines are gone: the summary stands for them
            if KEY_QUOTES_HEADER in system:
                quotes = system.split(KEY_QUOTES_HEADER, 1)[1].split("\n\n")[0]
                assert not any(line[:60] in quotes for line in shown_nets)


async def test_recalled_memories_never_say_the_same_thing_twice(open_engine):
    fake = FakeLLM({"narrate": "Aye."})
    engine = await open_engine(fake, budget_tokens=1500)
    chat = (await engine.create_chat(owner="@p:hs", host=HOST)).chat_id
    for n in range(3):
        await collect(engine.post_turn(chat, "Is the lamp lit?", f"$lamp{n}"))
    for n in range(30):
        await collect(engine.post_turn(chat, f"Line {n} about the tide " + "and so on " * 12, f"${n}"))
    await collect(engine.post_turn(chat, "Is the lamp lit, Wren?", "$ask"))
    notes = fake.calls_for("narrate")[-1].messages[-1]["content"].split(f"What {HOST_NAME} recalls now:", 1)[1]
    assert notes.count('said: "Is the lamp lit?"') == 1


async def test_summaries_naming_a_word_never_crowd_out_the_exchange_that_said_it(db, chat) -> None:
    from core.services import recall
    from core.state import memory

    said = await memory.record_memory(db, "chat-1", 'You said: "My cousin Odalys hid the astrolabe."', [PLAYER, "ada"])
    for n in range(30):  # summaries after it keep naming her, as a summarizer told to keep names does
        await memory.record_memory(db, "chat-1", f"Scene {n}: I thought of Odalys again.", ["ada"], kind="summary",
                                   pov="ada", significance=3)
    recalled = await recall.recalled_memories(db, "chat-1", "ada", "What about Odalys?")
    assert recalled[0].memory_id == said.memory_id
    assert [m.kind for m in recalled].count("summary") == recall.RECALLED_SUMMARIES
