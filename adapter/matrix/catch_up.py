"""What to catch up on after the bot was away: a pure plan, beside the pure routing.

At start the full-state sync shows each room's timeline since the saved sync token (or its
recent history, without one). `plan_catch_up` decides, from that data alone, which rooms' history
must be read further back before anything can be decided (the timeline was cut short and holds
no event of the bot's), and which events are then handed to routing, in order: every event after
the bot's own last one (the bot answers everything, so those are unanswered) and, when the cache
survived (`since_saved_token`), the story lines before it too (a line that arrived just before the
bot's edit of an earlier reply, then a crash, was otherwise lost; the engine drops the ones it
already took; commands and reactions there are not repeated, they are not idempotent).
No store, no client: `Dispatcher.catch_up` reads the pages and dispatches the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from adapter.matrix.room_types import RoomType
from adapter.matrix.routing import is_story_line
from adapter.matrix.store import RoomMeta

CAUGHT_UP_IN = frozenset({RoomType.STORY, RoomType.LOBBY, RoomType.INVITE})
MAX_PAGES = 5  # pages of older history read per room, at most


@dataclass(frozen=True)
class Backlog:
    """What the bot has of one room's timeline since it was away, oldest first."""

    room_id: str
    room_type: RoomType
    events: tuple[Any, ...]
    older: str | None = None  # where to read further back from, when the timeline was cut short
    pages: int = 0  # older pages read so far

    def with_older_page(self, chunk: Iterable[Any], end: str | None) -> Backlog:
        """The backlog with an older page (newest first, as the homeserver pages back) in front."""
        return replace(self, events=(*reversed(list(chunk)), *self.events), older=end, pages=self.pages + 1)

    def whole(self) -> Backlog:
        """The backlog as it stands, nothing older to be read (the homeserver gave no more)."""
        return replace(self, older=None)


@dataclass(frozen=True)
class CatchUpPlan:
    page_back: tuple[Backlog, ...]  # rooms whose history must be read further back first
    dispatch: tuple[tuple[str, Any], ...]  # (room id, event) to route, in order


def backlogs(timelines: Mapping[str, Any], rooms: Mapping[str, RoomMeta | None]) -> list[Backlog]:
    """The backlog of each joined room the bot serves (`timelines`: a sync's joined rooms by id, each
    with its `timeline`; `rooms`: the cached record of each), in the sync's order."""
    found = []
    for room_id, info in timelines.items():
        meta = rooms.get(room_id)
        if meta is None or meta.room_type not in CAUGHT_UP_IN:
            continue
        timeline = info.timeline
        older = timeline.prev_batch if timeline.limited and timeline.prev_batch else None
        found.append(Backlog(room_id, meta.room_type, tuple(timeline.events), older))
    return found


def plan_catch_up(
    rooms: Iterable[Backlog], bot_user_id: str, *, since_saved_token: bool, max_pages: int = MAX_PAGES
) -> CatchUpPlan:
    """Which rooms to read further back, and which events to dispatch (see the module docstring)."""
    page_back: list[Backlog] = []
    dispatch: list[tuple[str, Any]] = []
    for room in rooms:
        by_bot = [i for i, event in enumerate(room.events) if getattr(event, "sender", None) == bot_user_id]
        if not by_bot and room.older is not None and room.pages < max_pages:
            page_back.append(room)
            continue
        last_bot = by_bot[-1] if by_bot else -1
        if since_saved_token and room.room_type == RoomType.STORY:
            dispatch += [(room.room_id, event) for event in room.events[: last_bot + 1] if is_story_line(event)]
        dispatch += [(room.room_id, event) for event in room.events[last_bot + 1 :]]
    return CatchUpPlan(tuple(page_back), tuple(dispatch))
