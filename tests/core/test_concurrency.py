"""Many coroutines writing through the one writer connection: transactions never interleave."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.eventlog import append_and_apply, replay
from core.state import digests, edges, turns
from tests.core.conftest import PLAYER, dump_projections


async def test_concurrent_appends_make_a_consistent_log(db, chat):
    async def one_exchange(n: int) -> None:
        # Two events in one transaction, yielding to the loop in between: without the
        # write lock another coroutine's statements would land inside this transaction.
        async with db.transaction() as tx:
            await append_and_apply(tx, "turn_recorded", {
                "chat_id": "chat-1", "role": "user", "speaker": PLAYER, "text": f"question {n}", "source_id": f"$q{n}",
            })
            await asyncio.sleep(0)
            await append_and_apply(tx, "turn_recorded", {
                "chat_id": "chat-1", "role": "assistant", "speaker": "ada", "text": f"answer {n}",
            })

    async def one_turn(n: int) -> None:
        await append_and_apply(db, "turn_recorded", {
            "chat_id": "chat-1", "role": "narration", "speaker": "ada", "text": f"narration {n}",
        })

    await asyncio.gather(*(one_exchange(n) for n in range(40)), *(one_turn(n) for n in range(40)))

    rows = await db.reader.fetch_all("SELECT seq, payload FROM events WHERE kind = 'turn_recorded' ORDER BY seq")
    texts = [json.loads(r["payload"])["text"] for r in rows]
    assert len(texts) == 120
    seqs = [r["seq"] for r in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 120)), "no gaps: no transaction was rolled back"
    for i, text in enumerate(texts):
        if text.startswith("question"):
            assert texts[i + 1] == "answer " + text.split()[1], "an exchange's two events are adjacent"
    assert len(await turns.recent_turns(db, "chat-1", 500)) == 120
    before = await dump_projections(db)
    await replay(db)
    assert await dump_projections(db) == before


async def test_concurrent_read_modify_write_loses_no_update(db, chat):
    await asyncio.gather(*(
        edges.adjust_edge(db, "chat-1", "ada", PLAYER, affinity_delta=1, trust_delta=-1) for _ in range(60)
    ))
    edge = await edges.get_edge(db, "chat-1", "ada", PLAYER)
    assert (edge.affinity, edge.trust) == (60, -60)


async def test_concurrent_consumers_take_each_digest_once(db, chat):
    for n in range(10):
        await digests.create_digest(db, "chat-1", f"Meanwhile {n}")
    batches = await asyncio.gather(*(digests.consume_pending_digests(db, "chat-1") for _ in range(8)))
    taken = [d.digest_id for batch in batches for d in batch]
    assert len(taken) == len(set(taken)) == 10


async def test_cancelled_writer_leaves_no_open_transaction(db, chat):
    started = asyncio.Event()

    async def slow_writer() -> None:
        async with db.transaction() as tx:
            await append_and_apply(tx, "turn_recorded", {
                "chat_id": "chat-1", "role": "user", "speaker": PLAYER, "text": "never committed",
            })
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_writer())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    turn, _ = await turns.record_turn(db, "chat-1", "user", PLAYER, "after the cancel")
    assert [t.text for t in await turns.recent_turns(db, "chat-1")] == ["after the cancel"]


async def test_nested_transaction_through_the_database_fails_fast(db, chat):
    async with db.transaction() as tx:
        await turns.record_turn(tx, "chat-1", "user", PLAYER, "inside")
        with pytest.raises(RuntimeError, match="pass the Transaction"):
            await turns.record_turn(db, "chat-1", "user", PLAYER, "would deadlock")
    assert [t.text for t in await turns.recent_turns(db, "chat-1")] == ["inside"]
