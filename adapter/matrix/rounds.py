"""Rounds: in a story room with `!rounds on`, the players' lines are answered together.

A round opens with the first line after the last answer and gathers the lines that follow. It
closes as soon as every player of the room has spoken in it, or when its window
(`[matrix] round_window_s`, counted from its first line) ends, whichever comes first; then
its lines are answered by one reply that addresses each player (`Engine.post_round`). Each line
is handed to the engine as it comes (`receive_line`), so a round a stop cuts short is answered
at the next start from the lines still owed. Rounds are kept per room, in memory, only while
one is open; whether a room takes its turns in rounds is part of its `org.rpbot.room` state
(so it survives a restart and a lost cache).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from adapter.matrix.store import RoomMeta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldLine:
    """A player's line waiting for its round's answer."""

    player: str
    text: str
    event_id: str
    reply_to: str | None = None


@dataclass
class _Round:
    meta: RoomMeta
    timer: asyncio.TimerHandle | None = None
    lines: list[HeldLine] = field(default_factory=list)


class Rounds:
    """The rounds being gathered, one per room at most; `on_close` (the dispatcher's) is called with
    each round that closes, to have it answered."""

    def __init__(self, window_s: float, on_close: Callable[[RoomMeta, tuple[HeldLine, ...]], None] | None = None) -> None:
        self.window_s = window_s
        self.on_close = on_close
        self._open: dict[str, _Round] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, meta: RoomMeta, players: frozenset[str], line: HeldLine) -> None:
        """`line` joins the room's round (opening one); the round closes once every one of `players` has spoken."""
        gathering = self._open.get(meta.room_id)
        if gathering is None:
            gathering = self._open[meta.room_id] = _Round(meta)
            gathering.timer = asyncio.get_running_loop().call_later(self.window_s, self.close, meta.room_id)
        gathering.lines.append(line)
        if players <= {held.player for held in gathering.lines}:
            self.close(meta.room_id)

    def waiting(self, room_id: str) -> tuple[HeldLine, ...]:
        gathering = self._open.get(room_id)
        return tuple(gathering.lines) if gathering else ()

    def close(self, room_id: str) -> bool:
        """Close the room's round now (its time is up, everyone spoke, or rounds were turned off) and
        have it answered; False if none was open."""
        gathering = self._open.pop(room_id, None)
        if gathering is None:
            return False
        if gathering.timer is not None:
            gathering.timer.cancel()
        log.info("a round of %d lines closes", len(gathering.lines), extra={"room_id": room_id})
        if self.on_close is not None:
            self.on_close(gathering.meta, tuple(gathering.lines))
        return True
