"""KeyedLocks: one lock per key, held only while someone holds or waits for it (no per-key state left)."""

from __future__ import annotations

import asyncio

from core.keyed_locks import KeyedLocks


async def test_work_under_one_key_is_serialized_and_other_keys_run_alongside() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name} in")
            if name == "a1":
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(hold("a", "a1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("a", "a2"))
    other = asyncio.create_task(hold("b", "b1"))
    await asyncio.sleep(0.01)
    assert order == ["a1 in", "b1 in", "b1 out"]  # a2 waits behind a1; b1 is not held up
    assert locks.locked("a") and not locks.locked("b")
    release.set()
    await asyncio.gather(first, second, other)
    assert order[3:] == ["a1 out", "a2 in", "a2 out"]


async def test_nothing_is_kept_for_a_key_once_its_last_holder_or_waiter_leaves() -> None:
    locks = KeyedLocks()

    async def use(key: str) -> None:
        async with locks.hold(key):
            await asyncio.sleep(0)

    await asyncio.gather(*(use(f"room-{i % 50}") for i in range(500)))
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)

    async def waiter() -> None:
        async with locks.hold("k"):
            raise AssertionError("a cancelled waiter never gets the lock")

    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    release.set()
    await held
    assert len(locks) == 0


async def test_an_error_inside_releases_the_key() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("k"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert len(locks) == 0 and not locks.locked("k")
