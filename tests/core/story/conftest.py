"""Fixtures for the story tests (scenes, threads, world events, meanwhile, time skips)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from core.engine import Engine, TurnUpdate
from core.llm import FakeLLM
from core.state import world
from core.storage.sql import json_list_agg

HOST = "wren-halloway"
HOST_NAME = "Wren Halloway"
GUEST = "odile-marchetti"
GUEST_NAME = "Captain Odile Marchetti"
THIRD = "tamsin-vale"
THIRD_NAME = "Brother Tamsin Vale"
CLASSIFIERS = {"addressee", "threads", "lifecycle"}


async def collect(updates: AsyncIterator[TurnUpdate]) -> list[TurnUpdate]:
    return [update async for update in updates]


async def settle(engine: Engine, chat_id: str) -> None:
    """Wait for the chat's after-turn work (summaries of a detected scene close, lifecycle)."""
    await engine.pipeline._settle(chat_id)


async def open_scene_id(engine: Engine, chat_id: str) -> int | None:
    scene = await world.current_scene(engine.db, chat_id)
    return None if scene is None else scene.scene_id



TOKEN = re.compile(r"tok\w+?x")


class Plot:
    """A fake model whose answers depend only on what it is shown and on what the test sets:
    the reply (`reply`), who answers and what the line asks of the story (`speaker`, `intent`).
    Replies carry tokens (`tokNx`) so a test can follow them: a scene's summary recalls its
    tokens, its close opens a thread for the last one, a reply that mentions the festival plans
    one (the lifecycle reading), and thanks warm the speaker (the relationship reading)."""

    def __init__(self) -> None:
        self.reply = "Hello."
        self.speaker = HOST
        self.intent: dict = {}
        self.fake = FakeLLM(routes={
            "narrate": lambda _messages: self.reply,
            "addressee": lambda _messages: {"speaker": self.speaker, "confidence": "high", **self.intent},
            "scene_close": self.summary,
            "threads": self.threads,
            "lifecycle": self.lifecycle,
            "relationship": self.relationship,
            "meanwhile": "We talk about the tide.",
            "skip": "Time passes.",
            "ooc": "Out of the story: yes, the storm is coming.",
        })

    @staticmethod
    def summary(messages) -> str:
        who = HOST_NAME if f"You are {HOST_NAME}" in messages[0]["content"] else GUEST_NAME
        return f"{who} recalls {' '.join(TOKEN.findall(messages[-1]['content'])) or 'nothing much'}."

    @staticmethod
    def threads(messages) -> dict:
        tokens = TOKEN.findall(messages[-1]["content"].split("The scene:", 1)[-1])
        return {"open": [{"title": f"Thread of {tokens[-1]}", "summary": "It matters."}]} if tokens else {}

    @staticmethod
    def lifecycle(messages) -> dict:
        exchange = messages[-1]["content"].split("The latest exchange:", 1)[-1]
        tokens = TOKEN.findall(exchange)
        if "festival" not in exchange.lower() or not tokens:
            return {}
        return {"planned": [{"title": f"Festival of {tokens[-1]}", "when": "tomorrow at noon"}]}

    @staticmethod
    def relationship(messages) -> dict:
        return {"affinity": 1, "why": "thanked"} if "thank" in messages[-1]["content"].lower() else {}


async def story_content(engine: Engine, chat_id: str) -> dict:
    """What the story holds, by content (ids and the times of writes aside): shown turns, live
    memories with their witnesses, edges, threads, world events, scenes, digests, clock, note."""

    async def rows(sql: str) -> list[tuple]:
        return sorted(tuple(r) for r in await engine.db.reader.fetch_all(sql, (chat_id,)))

    return {
        "turns": [tuple(r) for r in await engine.db.reader.fetch_all(
            """SELECT role, speaker, text, truncated, speaker_name FROM turns
               WHERE chat_id = ? AND superseded_by IS NULL ORDER BY turn_id""", (chat_id,))],
        "memories": await rows(
            f"""SELECT kind, pov, text, significance,
                      (SELECT {json_list_agg(engine.db.dialect, 'witness')} FROM (SELECT witness FROM memory_witnesses w
                       WHERE w.memory_id = m.memory_id ORDER BY witness) AS ws)
               FROM memories m WHERE chat_id = ? AND retracted = 0"""),
        "edges": await rows("SELECT from_id, to_id, affinity, trust, summary FROM edges WHERE chat_id = ?"),
        "threads": await rows("SELECT title, summary, status, resolution FROM plot_threads WHERE chat_id = ?"),
        "world_events": await rows("SELECT title, status, due_at, started_at FROM world_events WHERE chat_id = ?"),
        "scenes": await rows("SELECT kind, title, present, closed_at IS NULL FROM scenes WHERE chat_id = ? AND withdrawn = 0"),
        "digests": await rows("SELECT text, participants, status FROM digests WHERE chat_id = ?"),
        "chat": await rows("SELECT host, guest, clock, note FROM chats WHERE chat_id = ?"),
    }


def prompt_text(call) -> str:
    return "\n".join(m["content"] for m in call.messages)
