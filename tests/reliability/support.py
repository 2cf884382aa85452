"""Helpers shared by the reliability tests and benches: scripted players, reply checks, replay check."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from core.eventlog import clear_projections, open_database, replay
from tests.core.conftest import dump_projections
from tests.support.fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from tests.support.matrix_user import MatrixUser

LINE_TAG = re.compile(r"line-\d+(?:-\d+)*")


class WatchingPlayer(MatrixUser):
    """A player whose client asks for long timelines, so no reply is missed between two syncs.

    Synapse caps the limit at 100 events a room (`filter_timeline_limit`): sync at least that often.
    """

    SYNC_FILTER = '{"room": {"timeline": {"limit": 1000}}}'


def openai_llm(server: FakeOpenAIServer, timeout_s: float = 30) -> dict:
    return {"provider": "openai", "base_url": server.base_url, "narrative_model": "m", "timeout_s": timeout_s}


def tagged_reply_text(request: RecordedRequest) -> str:
    """A narration that names the line it answers and ends with a marker, so a cut reply shows."""
    tag = LINE_TAG.search(request.last_user_message)
    name = tag.group(0) if tag else "untagged"
    return f"Answering {name}: " + " ".join(f"w{i}" for i in range(12)) + f" [end {name}]"


def tagged_reply(chunk_delay_s: float = 0.05, first_token_delay_s: float = 0.0) -> Reply:
    return Reply(text=tagged_reply_text, chunk_size=12, chunk_delay_s=chunk_delay_s, first_token_delay_s=first_token_delay_s)


def replies_by_line(player: MatrixUser, rooms: list[str], bot_user_id: str) -> dict[str, list[str]]:
    """line tag -> the final texts of every bot message answering it, across `rooms`."""
    found: dict[str, list[str]] = {}
    for room in rooms:
        for text in player.final_texts(room, bot_user_id).values():
            match = re.search(r"Answering (line-[\d-]+):", text)
            if match:
                found.setdefault(match.group(1), []).append(text)
    return found


def missing_or_duplicated(sent: list[str], replies: dict[str, list[str]]) -> dict[str, list[str]]:
    """Lines without exactly one complete reply (empty when all is well)."""
    wrong = {}
    for tag in sent:
        texts = replies.get(tag, [])
        if len(texts) != 1 or not texts[0].endswith(f"[end {tag}]"):
            wrong[tag] = texts
    return wrong


async def _replay_matches(path: Path) -> tuple[bool, int]:
    db = await open_database(path)
    try:
        before = await dump_projections(db)
        async with db.transaction() as tx:
            await clear_projections(tx)
        applied = await replay(db)
        return await dump_projections(db) == before, applied
    finally:
        await db.close()


def replay_matches(engine_db: Path) -> tuple[bool, int]:
    """Replay the event log into fresh projections and compare with what the bot left: (equal, events)."""
    return asyncio.run(_replay_matches(engine_db))
