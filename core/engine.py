"""Engine: the one API every adapter calls.

An adapter creates chats (stories) for its players, asks for a character's
greeting, and posts player lines with its own source id (the Matrix event id);
`post_turn` streams the character's reply as `TurnUpdate`s. Posting the same
source id twice returns the turn already made: nothing is generated twice.
`regenerate` replaces the last reply with a new swipe (rolling back what the old
one caused), and `cancel` stops a chat's in-flight generation, keeping the
partial reply marked truncated.  The pipeline itself lives in core/services
(`core.services.talk`); state changes go through the event log (core/state,
core/eventlog).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.characters.builtin import install_builtin_characters
from core.eventlog.db import Database, open_database
from core.llm.base import LLMClient
from core.services.dialogue import REPLY_SUFFIX, require_character
from core.services.prompt import DEFAULT_BUDGET_TOKENS, fill_placeholders, system_prompt
from core.services.talk import AfterTurn, AfterTurnStep, TurnPipeline, TurnUpdate
from core.state import turns as turn_state
from core.state import world

log = logging.getLogger(__name__)

GREETING_SOURCE = "greeting"
STORY_START = datetime(2026, 4, 1, 9, 0)  # a chat's clock starts at a spring morning

__all__ = [
    "GREETING_SOURCE",
    "REPLY_SUFFIX",
    "AfterTurn",
    "AfterTurnStep",
    "CharacterInfo",
    "ChatInfo",
    "Engine",
    "TurnUpdate",
    "system_prompt",
]


@dataclass(frozen=True)
class ChatInfo:
    chat_id: str
    owner: str
    title: str
    host_id: str
    host_name: str
    guest_id: str | None = None
    guest_name: str | None = None


@dataclass(frozen=True)
class CharacterInfo:
    character_id: str
    name: str
    description: str


class Engine:
    def __init__(self, db: Database, llm: LLMClient, *, budget_tokens: int = DEFAULT_BUDGET_TOKENS) -> None:
        self.db = db
        self.llm = llm
        self.pipeline = TurnPipeline(db, llm, budget_tokens=budget_tokens)

    @classmethod
    async def open(cls, path: Path | str, llm: LLMClient, *, budget_tokens: int = DEFAULT_BUDGET_TOKENS) -> "Engine":
        db = await open_database(path)
        await install_builtin_characters(db)
        return cls(db, llm, budget_tokens=budget_tokens)

    async def close(self) -> None:
        """Stop in-flight generations, wait for after-turn work, then release the model and the database."""
        await self.pipeline.close()
        await self.llm.aclose()
        await self.db.close()

    def add_after_turn_step(self, step: AfterTurnStep) -> None:
        """Run `step` after every recorded reply (as a task; the chat's next turn waits for it)."""
        self.pipeline.after_turn_steps.append(step)

    async def list_characters(self) -> list[CharacterInfo]:
        return [CharacterInfo(c.character_id, c.name, c.description) for c in await world.list_characters(self.db)]

    async def create_chat(self, *, owner: str, host: str, guest: str | None = None, title: str | None = None) -> ChatInfo:
        host_character = await require_character(self.db, host)
        guest_character = await require_character(self.db, guest) if guest else None
        title = title or host_character.name + (f" & {guest_character.name}" if guest_character else "")
        chat = await world.create_chat(self.db, owner=owner, host=host, guest=guest, title=title, clock=STORY_START)
        return ChatInfo(
            chat.chat_id, owner, chat.title, host, host_character.name,
            guest, guest_character.name if guest_character else None,
        )

    async def greeting(self, chat_id: str) -> TurnUpdate:
        """The host's first message, recorded once as the chat's opening turn."""
        chat = await world.require_chat(self.db, chat_id)
        host = await require_character(self.db, chat.host)
        text = fill_placeholders(host.first_mes, host) or f"*{host.name} looks up.* Oh, hello."
        turn, _ = await turn_state.record_turn(self.db, chat_id, "assistant", host.character_id, text, source_id=GREETING_SOURCE)
        return TurnUpdate(host.name, host.character_id, turn.text, done=True, turn_id=str(turn.turn_id))

    async def post_turn(self, chat_id: str, text: str, source_id: str) -> AsyncIterator[TurnUpdate]:
        """Record the player's line and stream the answering character's reply.

        With a guest present, one classifier request picks who answers (the host on
        any doubt).  If `source_id` was posted before, the reply already made (its
        shown swipe) is yielded as done, or, if no reply was recorded (the model
        failed), one is generated now; never twice.  Model failures raise
        `core.llm.LLMError` after the player's turn is recorded.  After `cancel`,
        the stream ends with a done update marked truncated.
        """
        async with aclosing(self.pipeline.post_turn(chat_id, text, source_id)) as updates:
            async for update in updates:
                yield update

    async def regenerate(self, chat_id: str) -> AsyncIterator[TurnUpdate]:
        """A new swipe of the chat's last reply, streamed like `post_turn`.

        The last shown assistant turn is superseded (it stays as a sibling) and what
        it caused is rolled back by compensating events (memories retracted, edges
        restored, world-event transitions reverted), atomically with recording the
        new reply.  If the last turn is the player's (its reply failed), a reply is
        generated for it.  On a model error nothing changes and the error is raised.
        """
        async with aclosing(self.pipeline.regenerate(chat_id)) as updates:
            async for update in updates:
                yield update

    async def cancel(self, chat_id: str) -> bool:
        """Stop the chat's in-flight generation (post_turn or regenerate); False if none runs.

        Returns at once; the consumer's stream then ends with a final update
        `done=True, truncated=True` holding the partial text, which is recorded as
        the reply (marked truncated).  No task of the generation is left running.
        """
        return self.pipeline.cancel(chat_id)
