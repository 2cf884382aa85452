"""Player lines: what the adapter handed over, and whether the player has seen its answer.

The engine is the one place that knows whether a line was answered. An adapter
receives a line as soon as it sees it (durably, before it moves past it), answers it
when its turn comes (`post_turn`), and says when the answer was shown. Lines still owed
after a restart are answered then.  A line names the player who said it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import fetch_all, fetch_one


@dataclass(frozen=True)
class OwedLine:
    chat_id: str
    source_id: str
    text: str
    player: str = ""  # who said it


async def is_known(source: Readable, chat_id: str, source_id: str) -> bool:
    """Whether the line was received before, or answered before lines were recorded."""
    if await fetch_one(source, "SELECT 1 FROM lines WHERE chat_id = ? AND source_id = ?", (chat_id, source_id)):
        return True
    return await fetch_one(
        source, "SELECT 1 FROM turns WHERE chat_id = ? AND source_id = ?", (chat_id, source_id)
    ) is not None


async def receive_line(target: Writable, chat_id: str, source_id: str, text: str, player: str) -> bool:
    """Record `player`'s line as owed an answer; False (and nothing written) if it is already known."""
    async with writing(target) as tx:
        if await is_known(tx, chat_id, source_id):
            return False
        await append_and_apply(tx, "line_received", {
            "chat_id": chat_id, "source_id": source_id, "text": text, "player": player,
        })
        return True


async def answer_line(target: Writable, chat_id: str, source_id: str) -> None:
    """The player has seen the line's answer (a line never received is ignored)."""
    async with writing(target) as tx:
        row = await fetch_one(
            tx, "SELECT answered_seq FROM lines WHERE chat_id = ? AND source_id = ?", (chat_id, source_id)
        )
        if row is not None and row["answered_seq"] is None:
            await append_and_apply(tx, "line_answered", {"chat_id": chat_id, "source_id": source_id})


async def owed_lines(source: Readable) -> list[OwedLine]:
    """Every line received and not yet answered, in the order received."""
    rows = await fetch_all(
        source, "SELECT chat_id, source_id, text, player FROM lines WHERE answered_seq IS NULL ORDER BY received_seq"
    )
    return [OwedLine(r["chat_id"], r["source_id"], r["text"], r["player"]) for r in rows]
