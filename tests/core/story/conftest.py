"""Fixtures for the story tests (scenes, threads, world events, meanwhile, time skips)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from core.engine import Engine, TurnUpdate
from core.state import world

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

