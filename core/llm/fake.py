"""A scripted `LLMClient` for tests, routed by purpose (not a FIFO queue of canned replies).

    fake = FakeLLM(routes={
        "narrate": "Mira smiles.",                           # fixed text
        "addressee": AddresseeChoice(speaker="mira"),        # a pydantic model -> its JSON
        "summary": lambda messages: f"{len(messages)} msgs", # computed from the messages
    })

A route is a string, a dict or pydantic model (sent as JSON), or a callable taking the
messages and returning any of those (it may be async). Every call is recorded in `calls`.
Calling a purpose with no route raises `UnplannedLLMCallError` (an AssertionError, so code
that catches `LLMError` for resilience cannot swallow it) and is also kept in `unplanned`,
except for the purposes of `DEFAULT_ROUTES`, which have a safe answer unless a test routes
them: "opening_time" (reading when a new story begins) says the opening states no time, and the
rolling summaries of a long story ("scene_part", "story_so_far") are a plain sentence.
Like a model server with a strict chat template, the fake refuses messages that are not one
system message followed by user / assistant strictly alternating from user: it raises
`RoleOrderError` (an AssertionError too), unless created with `strict=False`.
Per purpose you can add a delay before the reply, an error to raise (before the first chunk,
or mid-stream after some chunks), and streaming splits the reply into `chunk_size`-character
chunks (word by word when `chunk_size` is None).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from core.llm.base import ChatMessage, ModelRole
from core.llm.roles import role_order_error

Route = str | dict | BaseModel | Callable[[list[ChatMessage]], Any]
"""A reply for one purpose: text, JSON (dict or model), or a (sync or async) function of the
messages returning one of those."""


DEFAULT_ROUTES: dict[str, Route] = {
    "opening_time": {},
    "scene_part": "I kept listening as the talk went on.",
    "story_so_far": "Much has happened since the story began.",
}
"""Purposes answered when a test did not route them (recorded in `calls` like any other)."""


class UnplannedLLMCallError(AssertionError):
    """A test's FakeLLM was asked for a purpose it has no route for."""


class RoleOrderError(AssertionError):
    """A strict chat template would refuse these messages (roles out of order)."""


@dataclass
class FakeLLMCall:
    """One recorded call."""

    purpose: str
    role: ModelRole
    messages: list[ChatMessage]
    streamed: bool
    max_tokens: int | None = None
    temperature: float | None = None
    response_schema: type[BaseModel] | None = None
    stop: list[str] | None = None

    @property
    def system_prompt(self) -> str:
        return "\n".join(m["content"] for m in self.messages if m["role"] == "system")

    @property
    def last_user_message(self) -> str:
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


@dataclass
class _ScriptedError:
    error: BaseException | type[BaseException]
    after_chunks: int | None  # None: before anything is returned


class FakeLLM:
    """Test double for `LLMClient`; see the module docstring."""

    def __init__(
        self,
        routes: Mapping[str, Route] | None = None,
        *,
        delays: Mapping[str, float] | None = None,
        errors: Mapping[str, BaseException | type[BaseException]] | None = None,
        chunk_size: int | None = None,
        chunk_delay_s: float = 0.0,
        strict: bool = True,
    ) -> None:
        self.strict = strict
        self.routes = dict(routes or {})
        self.delays = dict(delays or {})
        self.chunk_size = chunk_size
        self.chunk_delay_s = chunk_delay_s
        self.calls: list[FakeLLMCall] = []
        self.unplanned: list[FakeLLMCall] = []
        self._errors = {p: _ScriptedError(e, None) for p, e in (errors or {}).items()}

    # -- scripting -----------------------------------------------------------------------

    def set_route(self, purpose: str, route: Route) -> None:
        self.routes[purpose] = route

    def set_delay(self, purpose: str, seconds: float) -> None:
        self.delays[purpose] = seconds

    def set_error(
        self,
        purpose: str,
        error: BaseException | type[BaseException] | None,
        *,
        after_chunks: int | None = None,
    ) -> None:
        """Raise `error` for `purpose` (None clears it). With `after_chunks`, streams yield that
        many chunks first; `generate` always raises at once."""
        if error is None:
            self._errors.pop(purpose, None)
        else:
            self._errors[purpose] = _ScriptedError(error, after_chunks)

    # -- inspection ----------------------------------------------------------------------

    def calls_for(self, purpose: str) -> list[FakeLLMCall]:
        return [call for call in self.calls if call.purpose == purpose]

    @property
    def purposes(self) -> list[str]:
        """Purposes in call order."""
        return [call.purpose for call in self.calls]

    # -- LLMClient -----------------------------------------------------------------------

    async def generate(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        response_schema: type[BaseModel] | None = None,
        stop: Sequence[str] | None = None,
    ) -> str:
        call = self._record(
            purpose, role, messages, False, max_tokens, temperature, response_schema, stop
        )
        await self._delay(purpose)
        self._raise_if_scripted(purpose, chunks_sent=None)
        return await self._reply_text(call)

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        purpose: str,
        role: ModelRole = "narrative",
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> AsyncGenerator[str, None]:
        call = self._record(purpose, role, messages, True, max_tokens, temperature, None, stop)
        await self._delay(purpose)
        self._raise_if_scripted(purpose, chunks_sent=None)
        text = await self._reply_text(call)
        for index, chunk in enumerate(self._chunks(text)):
            self._raise_if_scripted(purpose, chunks_sent=index)
            if index and self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            yield chunk
        scripted = self._errors.get(purpose)
        if scripted is not None and scripted.after_chunks is not None:
            raise _instantiate(scripted.error)

    async def aclose(self) -> None:
        return None

    # -- internals -----------------------------------------------------------------------

    def _record(
        self,
        purpose: str,
        role: ModelRole,
        messages: Sequence[ChatMessage],
        streamed: bool,
        max_tokens: int | None,
        temperature: float | None,
        response_schema: type[BaseModel] | None,
        stop: Sequence[str] | None = None,
    ) -> FakeLLMCall:
        call = FakeLLMCall(
            purpose=purpose,
            role=role,
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            streamed=streamed,
            max_tokens=max_tokens,
            temperature=temperature,
            response_schema=response_schema,
            stop=list(stop) if stop else None,
        )
        self.calls.append(call)
        problem = role_order_error(call.messages) if self.strict else None
        if problem is not None:
            raise RoleOrderError(f"purpose {purpose!r}: {problem}; roles {[m['role'] for m in call.messages]}")
        if purpose not in self.routes and purpose not in self._errors and purpose not in DEFAULT_ROUTES:
            self.unplanned.append(call)
            raise UnplannedLLMCallError(
                f"FakeLLM has no route for purpose {purpose!r} (routes: {sorted(self.routes)}); "
                f"last user message: {call.last_user_message[:100]!r}"
            )
        return call

    async def _delay(self, purpose: str) -> None:
        seconds = self.delays.get(purpose, 0.0)
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _raise_if_scripted(self, purpose: str, *, chunks_sent: int | None) -> None:
        scripted = self._errors.get(purpose)
        if scripted is None:
            return
        if scripted.after_chunks is None and chunks_sent is None:
            raise _instantiate(scripted.error)
        if scripted.after_chunks is not None and chunks_sent == scripted.after_chunks:
            raise _instantiate(scripted.error)

    async def _reply_text(self, call: FakeLLMCall) -> str:
        route = self.routes.get(call.purpose, DEFAULT_ROUTES.get(call.purpose, ""))
        if callable(route) and not isinstance(route, BaseModel):
            route = route(list(call.messages))
            if inspect.isawaitable(route):
                route = await route
        if isinstance(route, BaseModel):
            return route.model_dump_json()
        if isinstance(route, (dict, list)):
            return json.dumps(route)
        return cut_at_stop(str(route), call.stop)

    def _chunks(self, text: str) -> list[str]:
        if self.chunk_size:
            return [text[i : i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        return re.findall(r"\S+\s*|\s+", text)


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to the first of the `stop` sequences, as a model server returns it."""
    stop = [stop] if isinstance(stop, str) else stop
    cut = min((text.find(s) for s in stop or () if s and s in text), default=len(text))
    return text[:cut]


def _instantiate(error: BaseException | type[BaseException]) -> BaseException:
    if isinstance(error, type):
        try:
            return error("scripted FakeLLM error")
        except TypeError:
            return error()
    return error
