"""One streamed model generation that can be stopped from outside (cancel / `!stop`).

The model's stream is read by a task of its own that puts text deltas on a
queue; the consumer reads `deltas()`.  `cancel()` cancels that task (which
closes the HTTP stream, so the provider stops generating); `deltas()` then ends
normally with `stopped` set, after every delta received before the stop.  A
model error ends `deltas()` by raising it.  `aclose()` cancels the task if it
still runs and waits for it, so no task outlives the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from core.llm.base import ChatMessage, LLMClient

_END = object()


class Generation:
    def __init__(
        self,
        llm: LLMClient,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self.stopped = False
        self._task = asyncio.create_task(self._produce(llm, messages, purpose, max_tokens, temperature, stop))
        # Runs however the task ends, even if it is cancelled before its first step.
        self._task.add_done_callback(lambda _task: self._queue.put_nowait(_END))

    async def _produce(
        self, llm: LLMClient, messages: Sequence[ChatMessage], purpose: str,
        max_tokens: int | None, temperature: float | None, stop: Sequence[str] | None,
    ) -> None:
        stream = llm.stream(messages, purpose=purpose, max_tokens=max_tokens, temperature=temperature, stop=stop)
        async with aclosing(stream) as deltas:
            async for delta in deltas:
                if delta:
                    self._queue.put_nowait(delta)

    def cancel(self) -> bool:
        """Stop generating; False if the generation had already ended."""
        if self._task.done():
            return False
        self.stopped = True
        self._task.cancel()
        return True

    async def deltas(self) -> AsyncGenerator[str, None]:
        """The text deltas; ends when the model is done or the generation was cancelled."""
        while True:
            item = await self._queue.get()
            if item is _END:
                break
            assert isinstance(item, str)
            yield item
        if self._task.cancelled():
            self.stopped = True
            return
        error = self._task.exception()
        if error is not None:
            raise error

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
