"""Random stories through the Engine API, with model failures: the story keeps its integrity.

Each example plays a random sequence of operations (a line to the host or the guest, a
meanwhile scene, a scene closed by command or in words, a skip, a jump, a regenerate, a
line posted again, a line in a second chat), with the model failing now and then for one
purpose. Every reply carries a unique token. Then:

- replaying the event log gives exactly the live tables;
- no prompt sent after a reply was superseded, and no memory search, holds its token;
- a regenerate of the last reply gives the same story (by content: ids and times aside)
  as a second engine that played the same sequence and only ever produced the new reply.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import Engine
from core.errors import NothingToRegenerateError
from core.eventlog import replay
from core.llm import FakeLLM
from core.llm.base import LLMError
from core.state import memory as memory_state
from tests.core.conftest import check_fts_index, dump_projections
from tests.core.story.conftest import GUEST, GUEST_NAME, HOST, HOST_NAME, collect

OPERATIONS = ("host line", "guest line", "meanwhile", "close", "close in words", "skip", "jump",
              "regenerate", "post again", "second chat", "cancel")
FAILING = (None, None, None, "narrate", "scene_close", "threads", "addressee", "skip", "meanwhile")
TOKEN = re.compile(r"tok\d+x")


@dataclass
class Model:
    """A fake model whose answers depend only on what it is shown and on the operation being played."""

    reply: str = "Hello."
    speaker: str = HOST
    close: bool = False
    fake: FakeLLM = field(init=False)

    def __post_init__(self) -> None:
        self.fake = FakeLLM(routes={
            "narrate": lambda _messages: self.reply,
            "addressee": lambda _messages: {"speaker": self.speaker, "confidence": "high", "close_scene": self.close},
            "scene_close": self.summary,
            "threads": self.threads,
            "lifecycle": {},
            "meanwhile": "We talk about the tide.",
            "skip": "Time passes.",
        }, chunk_delay_s=0.002)  # a stream a cancel can stop after its first words

    @staticmethod
    def summary(messages) -> str:
        who = HOST_NAME if f"You are {HOST_NAME}" in messages[0]["content"] else GUEST_NAME
        tokens = TOKEN.findall(messages[-1]["content"])
        return f"{who} recalls {' '.join(tokens) or 'nothing much'}."

    @staticmethod
    def threads(messages) -> dict:
        tokens = TOKEN.findall(messages[-1]["content"])
        return {"open": [{"title": f"Thread of {tokens[-1]}", "summary": "It matters."}]} if tokens else {}


@dataclass
class Run:
    engine: Engine
    model: Model
    chat_id: str
    second_chat_id: str
    superseded: list[tuple[str, int]] = field(default_factory=list)  # (token, calls made before it was superseded)


async def start(path: Path) -> Run:
    model = Model()
    engine = await Engine.open(path, model.fake)
    chat = await engine.create_chat(owner="@p:hs", host=HOST, guest=GUEST)
    second = await engine.create_chat(owner="@p:hs", host=HOST)
    return Run(engine, model, chat.chat_id, second.chat_id)


async def play(run: Run, step: int, operation: str, failing: str | None, reply: str) -> None:
    """One operation; the failures a player may meet (the model, nothing to redo) are swallowed."""
    engine, model, chat_id = run.engine, run.model, run.chat_id
    model.reply, model.speaker, model.close = reply, HOST, False
    if failing:
        model.fake.set_error(failing, LLMError("scripted failure", purpose=failing))
    try:
        if operation in ("host line", "guest line", "close in words"):
            model.speaker = GUEST if operation == "guest line" else HOST
            model.close = operation == "close in words"
            # Lines call their character by name (no routing call); a close in words is routed.
            text = {"host line": f"Wren, line {step}.", "guest line": f"Odile, line {step}.",
                    "close in words": f"Line {step}. We part ways for now."}[operation]
            await collect(engine.post_turn(chat_id, text, f"${step}"))
        elif operation == "cancel":  # the player stops the reply after its first words
            async with aclosing(engine.post_turn(chat_id, f"Wren, line {step}.", f"${step}")) as updates:
                async for update in updates:
                    if not update.done:
                        await engine.cancel(chat_id)
        elif operation == "post again":
            await collect(engine.post_turn(chat_id, f"Line {step // 2}.", f"${step // 2}"))
        elif operation == "second chat":
            await collect(engine.post_turn(run.second_chat_id, f"Aside {step}.", f"$aside{step}"))
        elif operation == "meanwhile":
            await collect(engine.meanwhile(chat_id, HOST, GUEST, "the tide"))
        elif operation == "close":
            await engine.close_scene(chat_id)
        elif operation == "skip":
            await engine.skip(chat_id, timedelta(hours=1))
        elif operation == "jump":
            await engine.jump(chat_id, await engine.chat_clock(chat_id) + timedelta(days=1))
        elif operation == "regenerate":
            await regenerate(run, reply)
    except (LLMError, NothingToRegenerateError):
        pass
    finally:
        if failing:
            model.fake.set_error(failing, None)
        await engine.pipeline._settle(chat_id)


async def regenerate(run: Run, reply: str) -> None:
    shown = await run.engine.db.reader.execute_fetchall(
        "SELECT text FROM turns WHERE chat_id = ? AND superseded_by IS NULL ORDER BY turn_id DESC LIMIT 1",
        (run.chat_id,),
    )
    old_tokens = TOKEN.findall(shown[0][0]) if shown else []
    run.model.reply = reply
    await collect(run.engine.regenerate(run.chat_id))
    calls = len(run.model.fake.calls)
    run.superseded += [(token, calls) for token in old_tokens]


async def finish(run: Run) -> None:
    """Write what is still owed (a failed summary) the way a player's next close would."""
    await run.engine.pipeline._settle(run.chat_id)
    await run.engine.close_scene(run.chat_id)


async def story_content(run: Run) -> dict:
    """The tables, by content: ids and times aside, superseded swipes and retracted rows left out."""
    engine, names = run.engine, {run.chat_id: "main", run.second_chat_id: "second"}

    async def rows(sql: str) -> list[tuple]:
        return sorted((names[r[0]], *tuple(r)[1:]) for r in await engine.db.reader.execute_fetchall(sql))

    return {
        "turns": await rows("""SELECT chat_id, role, speaker, text, truncated FROM turns WHERE superseded_by IS NULL"""),
        "memories": await rows(
            """SELECT chat_id, kind, pov, text, significance,
                      (SELECT group_concat(witness) FROM (SELECT witness FROM memory_witnesses w
                       WHERE w.memory_id = m.memory_id ORDER BY witness))
               FROM memories m WHERE retracted = 0"""),
        "edges": await rows("SELECT chat_id, from_id, to_id, affinity, trust, summary FROM edges"),
        "threads": await rows("SELECT chat_id, title, summary, status, resolution FROM plot_threads"),
        "scenes": await rows("SELECT chat_id, kind, title, present, closed_at IS NULL FROM scenes"),
        "digests": await rows("SELECT chat_id, text, participants, status FROM digests"),
        "chats": await rows("SELECT chat_id, host, guest, clock FROM chats"),
    }


async def check_no_superseded_text(run: Run) -> None:
    for token, calls_before in run.superseded:
        for call in run.model.fake.calls[calls_before:]:
            assert token not in "\n".join(m["content"] for m in call.messages), (token, call.purpose)
        for who in ("you", HOST, GUEST):
            hits = await memory_state.search_memories(run.engine.db, run.chat_id, who, token, 50)
            assert [h.memory.text for h in hits if token in h.memory.text] == [], (token, who)


async def example(operations: list[tuple[str, str | None]], tail: list[str], directory: Path) -> None:
    live = await start(directory / "live.sqlite3")
    only_new = await start(directory / "only-new.sqlite3")
    try:
        for step, (operation, failing) in enumerate(operations, start=1):
            await play(live, step, operation, failing, f"Reply tok{step}x.")
            await play(only_new, step, operation, failing, f"Reply tok{step}x.")
        # The last line's reply, redone after what followed it (`tail`); the other engine answers
        # that line with the new reply at once, then plays the same tail.
        last = len(operations) + 1
        await play(live, last, "host line", None, f"Reply tok{last}x.")
        await play(only_new, last, "host line", None, f"Reply tok{last + 1}x.")
        for offset, operation in enumerate(tail, start=2):
            await play(live, last + offset, operation, None, f"Reply tok{last + offset}x.")
            await play(only_new, last + offset, operation, None, f"Reply tok{last + offset}x.")
        await regenerate(live, f"Reply tok{last + 1}x.")
        await finish(live)
        await finish(only_new)

        await check_no_superseded_text(live)
        assert await story_content(live) == await story_content(only_new)
        for engine in (live.engine, only_new.engine):
            before = await dump_projections(engine.db)
            await replay(engine.db)
            assert await dump_projections(engine.db) == before
            await check_fts_index(engine.db)
    finally:
        await live.engine.close()
        await only_new.engine.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(OPERATIONS), st.sampled_from(FAILING)), min_size=1, max_size=10),
    st.lists(st.sampled_from(["close", "meanwhile"]), max_size=2),
)
def test_random_stories_keep_their_integrity(operations: list[tuple[str, str | None]], tail: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(example(operations, tail, Path(directory)))
