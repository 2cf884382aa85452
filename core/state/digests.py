"""Meanwhile digests: what happened off-screen, shown on the player's next turn, once.

A digest is created pending; `consume_pending_digests` marks every pending
digest of a chat consumed in one transaction (under the write lock), so two
concurrent turns can never both surface the same digest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.errors import DigestNotFoundError
from core.eventlog import Readable, Writable, append_and_apply, writing
from core.state.rows import dialect_of, fetch_all, fetch_one, json_tuple, story_time
from core.storage.sql import json_items


@dataclass(frozen=True)
class Digest:
    digest_id: int
    chat_id: str
    scene_id: int | None
    text: str
    participants: tuple[str, ...]
    status: Literal["pending", "consumed"]
    created_at: datetime
    consumed_at: datetime | None
    consumed_by_turn: int | None


def _digest(row: Any) -> Digest:
    return Digest(
        row["digest_id"], row["chat_id"], row["scene_id"], row["text"], json_tuple(row["participants"]),
        row["status"], datetime.fromisoformat(row["created_at"]), story_time(row["consumed_at"]),
        row["consumed_by_turn"],
    )


async def create_digest(
    target: Writable, chat_id: str, text: str, *, scene_id: int | None = None, participants: Iterable[str] = ()
) -> Digest:
    async with writing(target) as tx:
        event = await append_and_apply(tx, "digest_created", {
            "chat_id": chat_id, "text": text, "scene_id": scene_id, "participants": list(participants),
        })
        assert event.ref is not None
        return await require_digest(tx, event.ref)


async def consume_digest(target: Writable, chat_id: str, digest_id: int, turn_id: int | None = None) -> None:
    """Mark one digest consumed; a second consume raises IllegalTransitionError."""
    await append_and_apply(target, "digest_consumed", {"chat_id": chat_id, "digest_id": digest_id, "turn_id": turn_id})


async def consume_pending_digests(target: Writable, chat_id: str, turn_id: int | None = None) -> list[Digest]:
    """Take every pending digest of the chat (oldest first) and mark them consumed, atomically."""
    async with writing(target) as tx:
        pending = await pending_digests(tx, chat_id)
        for digest in pending:
            await consume_digest(tx, chat_id, digest.digest_id, turn_id)
    return pending


async def return_digest(target: Writable, chat_id: str, digest_id: int) -> None:
    """A consumed digest is pending again (the line it was told with was taken back)."""
    await append_and_apply(target, "digest_returned", {"chat_id": chat_id, "digest_id": digest_id})


async def digests_consumed_by(source: Readable, chat_id: str, turn_id: int) -> list[Digest]:
    rows = await fetch_all(
        source, "SELECT * FROM digests WHERE chat_id = ? AND consumed_by_turn = ? ORDER BY digest_id", (chat_id, turn_id)
    )
    return [_digest(r) for r in rows]


async def pending_digests(source: Readable, chat_id: str) -> list[Digest]:
    rows = await fetch_all(
        source, "SELECT * FROM digests WHERE chat_id = ? AND status = 'pending' ORDER BY digest_id", (chat_id,)
    )
    return [_digest(r) for r in rows]


async def get_digest(source: Readable, digest_id: int) -> Digest | None:
    row = await fetch_one(source, "SELECT * FROM digests WHERE digest_id = ?", (digest_id,))
    return None if row is None else _digest(row)


async def require_digest(source: Readable, digest_id: int) -> Digest:
    digest = await get_digest(source, digest_id)
    if digest is None:
        raise DigestNotFoundError(digest_id)
    return digest


async def digests_for_reply(
    source: Readable, chat_id: str, who: str, user_turn_id: int | None, *, created_before: int | None = None
) -> list[Digest]:
    """The chat's digests that include `who` among their participants and are pending or were
    consumed by `user_turn_id` (with `created_before`, only those created before that event), in order."""
    rows = await fetch_all(
        source,
        f"""SELECT * FROM digests
           WHERE chat_id = :chat AND (status = 'pending' OR consumed_by_turn = :turn)
             AND EXISTS (SELECT 1 FROM {json_items(dialect_of(source), 'digests.participants', 'p')} WHERE p.value = :who)
             AND (:before IS NULL OR digest_id < :before)
           ORDER BY digest_id""",
        {"chat": chat_id, "turn": user_turn_id, "who": who, "before": created_before},
    )
    return [_digest(r) for r in rows]
