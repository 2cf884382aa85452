"""The players of the capacity benchmark: asyncio clients that send lines and time the bot's answers.

Each player's client long-polls /sync filtered to its bot's messages and times, per line, send ->
the first bot message (first text) and send -> the message reading complete (final text). The
fake model's narration names the line it answers and ends with a marker, so completeness shows.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field

import httpx

from adapter.devserver import RegisteredUser
from tests.reliability.support import LINE_TAG
from tests.support.fake_openai import RecordedRequest

FILLER = ("The lamp gutters as the wind finds the cracks in the shutters, and the old house answers "
          "with a long creak from somewhere above. ")


def narration(request: RecordedRequest) -> str:
    """About 100 tokens that name the line answered and end with a marker, so completeness shows."""
    tag = LINE_TAG.search(request.last_user_message)
    name = tag.group(0) if tag else "untagged"
    return f"Answering {name}: " + FILLER * 3 + f"[end {name}]"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass(frozen=True)
class BenchPlayer:
    """An onboarded player: the account, its story rooms, and the bot account whose rooms they are."""

    account: RegisteredUser
    rooms: list[str]
    bot_id: str


@dataclass
class Sample:
    """One line's times (monotonic, this process): sent, first bot message seen, complete reply seen;
    `asked_model_at` is when the fake model (in this process too) received the narration request."""

    tag: str
    sent_at: float
    first_at: float
    final_at: float
    asked_model_at: float = float("nan")


@dataclass
class Outstanding:
    tag: str
    sent_at: float
    first_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AsyncPlayer:
    """One player's client during the measured steps: sends lines and long-polls /sync for the bot's messages."""

    def __init__(self, url: str, player: BenchPlayer) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {player.account.access_token}"},
                                      timeout=httpx.Timeout(60, connect=10),
                                      limits=httpx.Limits(max_connections=len(player.rooms) + 2))
        self.rooms = player.rooms
        self.filter = json.dumps({"presence": {"types": []}, "account_data": {"types": []},
                                  "room": {"state": {"types": []}, "ephemeral": {"types": []}, "account_data": {"types": []},
                                           "timeline": {"types": ["m.room.message"], "senders": [player.bot_id], "limit": 100}}})
        self.since: str | None = None
        self.outstanding: dict[str, Outstanding] = {}
        self.syncing: asyncio.Task | None = None

    async def start(self) -> None:
        self.since = (await self._sync(0))["next_batch"]
        self.syncing = asyncio.create_task(self._sync_forever())

    async def close(self) -> None:
        if self.syncing is not None:
            self.syncing.cancel()
        await self.http.aclose()

    async def _sync(self, timeout_ms: int) -> dict:
        params = {"timeout": timeout_ms, "filter": self.filter}
        if self.since:
            params["since"] = self.since
        response = await self.http.get("/_matrix/client/v3/sync", params=params, timeout=timeout_ms / 1000 + 60)
        response.raise_for_status()
        return response.json()

    async def _sync_forever(self) -> None:
        while True:
            try:
                body = await self._sync(30_000)
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            arrived = time.monotonic()
            self.since = body["next_batch"]
            for room_id, room in body.get("rooms", {}).get("join", {}).items():
                waiting = self.outstanding.get(room_id)
                for event in room.get("timeline", {}).get("events", []):
                    if waiting is not None:
                        self._observe(waiting, event.get("content", {}), arrived)

    @staticmethod
    def _observe(waiting: Outstanding, content: dict, arrived: float) -> None:
        is_edit = content.get("m.relates_to", {}).get("rel_type") == "m.replace"
        body = (content.get("m.new_content") or {}).get("body", "") if is_edit else content.get("body", "")
        if not is_edit and waiting.first_at is None and "Answering" in body:  # body: "Speaker: text"
            waiting.first_at = arrived
        if body.endswith(f"[end {waiting.tag}]"):
            waiting.first_at = waiting.first_at or arrived
            waiting.done.set()

    async def talk(self, room_id: str, tag_prefix: str, turns: int, think_s: float, samples: list, errors: list) -> None:
        await asyncio.sleep(random.uniform(0, think_s))
        for turn in range(turns):
            tag = f"{tag_prefix}-{turn}"
            waiting = self.outstanding[room_id] = Outstanding(tag, time.monotonic())
            try:
                response = await self.http.put(f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{uuid.uuid4().hex}",
                                               json={"msgtype": "m.text", "body": f"I look around and say {tag} to you."})
                response.raise_for_status()
                await asyncio.wait_for(waiting.done.wait(), timeout=60)
                samples.append(Sample(tag, waiting.sent_at, waiting.first_at, time.monotonic()))
            except (TimeoutError, httpx.HTTPError) as exc:
                errors.append(f"{tag}: {type(exc).__name__} {exc}")
            finally:
                self.outstanding.pop(room_id, None)
            await asyncio.sleep(think_s * random.uniform(0.5, 1.5))
