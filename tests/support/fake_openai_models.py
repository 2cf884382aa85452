"""What the fake OpenAI server records and how it is scripted: requests, replies, rules."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from core.llm.roles import without_notes

PURPOSE_HEADER = "X-RPBot-Purpose"


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: CIMultiDict[str]  # case-insensitive
    body: Any  # the parsed JSON body, None if absent or not JSON
    raw_body: bytes
    received_at: float  # time.time()
    received_monotonic: float  # time.monotonic(), for measuring gaps between requests
    purpose: str | None  # the X-RPBot-Purpose header
    disconnected: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}

    @property
    def model(self) -> str | None:
        return self.json.get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.json.get("messages") or [])

    @property
    def system_prompt(self) -> str:
        return "\n".join(
            str(m.get("content", "")) for m in self.messages if m.get("role") == "system"
        )

    @property
    def last_user_message(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return str(users[-1].get("content", "")) if users else ""

    @property
    def player_line(self) -> str:
        """The last user message without the notes a reply prompt adds after the player's line."""
        return without_notes(self.last_user_message)

    @property
    def is_stream(self) -> bool:
        return bool(self.json.get("stream"))

    @property
    def response_format(self) -> dict[str, Any] | None:
        return self.json.get("response_format")

    @property
    def client_disconnected(self) -> bool:
        return self.disconnected.is_set()

    def wait_disconnected(self, timeout: float = 5.0) -> bool:
        """True once the client has dropped the connection before the reply was complete."""
        return self.disconnected.wait(timeout)


@dataclass
class Reply:
    """What the server does for one request. See the module docstring for failure counting."""

    text: str | Callable[[RecordedRequest], str] | None = None  # None: "Echo: <the player's line>"
    chunk_size: int = 8  # characters per streamed content chunk
    first_token_delay_s: float = 0.0  # before the response (non-stream) or first chunk
    chunk_delay_s: float = 0.0
    finish_reason: str | None = "stop"  # None: no finish chunk
    send_done: bool = True  # send `data: [DONE]` at the end
    keepalive_comments: bool = False  # `: keep-alive` comment line before every chunk
    # failures
    status: int = 200  # >= 400: answer with this status instead
    retry_after: float | str | None = None  # Retry-After header on the error status
    error_body: dict[str, Any] | str | None = None  # default: an OpenAI error object
    hang: bool = False  # accept the request and never answer
    stream_error: dict[str, Any] | None = None  # `data: {"error": <this>}` mid-stream
    vllm_stream_error: str | None = None  # `data: {"object": "error", "message": <this>}`
    malformed_line: bool = False  # a `data:` line that is not JSON, mid-stream
    truncate: bool = False  # drop the connection mid-stream (no [DONE])
    stall: bool = False  # stop sending mid-stream, keep the connection open
    fail_after_chunks: int = 1  # content chunks sent before a mid-stream failure
    fail_times: int | None = None  # None: fail every time; N: only the first N requests
    _failures_served: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take_failure_slot(self) -> bool:
        """Whether this request gets the scripted failures (counts it if so)."""
        with self._lock:
            if self.fail_times is None:
                return True
            if self._failures_served < self.fail_times:
                self._failures_served += 1
                return True
            return False

    def render_text(self, request: RecordedRequest) -> str:
        if callable(self.text):
            return self.text(request)
        if self.text is None:
            return f"Echo: {request.player_line}"
        return self.text

    @property
    def fails_mid_stream(self) -> bool:
        scripted = (self.stream_error, self.vllm_stream_error, self.malformed_line, self.truncate)
        return any(scripted) or self.stall


@dataclass
class Rule:
    """Serve `reply` to requests matching every given condition (None: any)."""

    reply: Reply
    purpose: str | None = None
    model: str | None = None
    system_contains: str | None = None
    user_contains: str | None = None
    has_response_format: bool | None = None
    stream: bool | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    times: int | None = None  # used up after this many requests
    used: int = 0

    def matches(self, request: RecordedRequest) -> bool:
        checks = [
            self.times is None or self.used < self.times,
            self.purpose is None or request.purpose == self.purpose,
            self.model is None or request.model == self.model,
            self.system_contains is None or self.system_contains in request.system_prompt,
            self.user_contains is None or self.user_contains in request.last_user_message,
            self.has_response_format is None
            or (request.response_format is not None) == self.has_response_format,
            self.stream is None or request.is_stream == self.stream,
        ]
        return all(checks) and (self.match is None or self.match(request))
