"""`Engine.export_story` and its Markdown: shown turns only, scene summaries per POV, threads."""

from __future__ import annotations

from adapter.export import render_markdown
from core.engine import Engine
from core.llm import FakeLLM
from core.services.addressee import AddresseeDecision
from core.state import threads as thread_state

HOST = "wren-halloway"
GUEST = "odile-marchetti"
REPLIES = ["The harbour bell rings twice.", "A gull steals the bread.", "Rain starts over the quay."]


def pov_summary(messages) -> str:
    return "Wren's summary." if "You are Wren" in messages[0]["content"] else "Odile's summary."


async def test_export_keeps_shown_turns_in_order_and_summaries(tmp_path):
    replies = list(REPLIES)
    fake = FakeLLM(routes={
        "addressee": AddresseeDecision(speaker=HOST, confidence="high"),
        "narrate": lambda _messages: replies.pop(0),
        "scene_close": pov_summary,
        "threads": {},
        "lifecycle": {},
    })
    engine = await Engine.open(tmp_path / "engine.sqlite3", fake)
    try:
        chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST, title="Harbour days")
        await engine.greeting(chat.chat_id)
        async for _ in engine.post_turn(chat.chat_id, "Good morning, Wren.", "$1"):
            pass
        async for _ in engine.post_turn(chat.chat_id, "What was that noise?", "$2"):
            pass
        async for _ in engine.regenerate(chat.chat_id):  # "A gull steals the bread." is superseded
            pass
        await engine.pipeline._settle(chat.chat_id)
        assert await engine.close_scene(chat.chat_id) is not None
        await thread_state.open_thread(engine.db, chat.chat_id, "The missing bread", "Who keeps feeding the gulls?")
        bell = await thread_state.open_thread(engine.db, chat.chat_id, "The bell", "Who rang it twice?")
        await thread_state.close_thread(engine.db, chat.chat_id, bell.thread_id, "The ferryman rang it.")

        story = await engine.export_story(chat.chat_id)
        markdown = render_markdown(story)
    finally:
        await engine.close()

    assert [c.character_id for c in story.cast] == [HOST, GUEST]
    assert markdown.startswith("# Harbour days\n")
    assert "## Cast" in markdown and "**Wren Halloway**" in markdown
    order = ["**p:** Good morning, Wren.", REPLIES[0], "**p:** What was that noise?", REPLIES[2]]
    positions = [markdown.index(text) for text in order]
    assert positions == sorted(positions)
    assert REPLIES[1] not in markdown  # the superseded swipe
    assert "Wren's summary." in markdown and "Odile's summary." in markdown
    assert "## Threads" in markdown and "**The missing bread** (open)" in markdown
    assert "**The bell** (closed): Who rang it twice? Resolved: The ferryman rang it." in markdown
