"""Several players in a story room, as the dispatcher follows them: a friend who joins plays (their
first line in the same sync is theirs), one who leaves no longer does, a user who may not use the
bot is turned away; in a room with rounds, the players' lines are answered together.

Events are real nio events parsed from event JSON; the store is a real adapter.sqlite3; the engine
is a stand-in keeping the players and lines as the real one does (the real engine behind the same
steps is in test_players_e2e.py).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from nio import Event, SyncResponse

from adapter.matrix.dispatcher import Dispatcher
from adapter.matrix.outgoing import Kick, SendMessage
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, room_players, set_room_meta
from core.engine import OwedLine, PlayerInfo, TurnUpdate
from core.errors import NotAPlayerError
from tests.adapter.matrix.stand_ins import BOT, Ctx

ALICE, BOB, CAROL, MALLORY = "@alice:localhost", "@bob:localhost", "@carol:localhost", "@mallory:elsewhere"
STORY = RoomMeta("!story", RoomType.STORY, ALICE, "!space", "chat-1", "mx-1")
_ids = itertools.count(1)


def event(sender: str, event_type: str, content: dict[str, Any], **fields: Any) -> Any:
    return Event.parse_event({"type": event_type, "sender": sender, "event_id": f"$e{next(_ids)}", "origin_server_ts": 1,
                              "content": content, **fields})


def line(sender: str, body: str) -> Any:
    return event(sender, "m.room.message", {"msgtype": "m.text", "body": body})


def member(subject: str, membership: str, was: str | None = None, *, sender: str | None = None, name: str | None = None) -> Any:
    content = {"membership": membership, **({"displayname": name} if name else {})}
    unsigned = {"unsigned": {"prev_content": {"membership": was}}} if was else {}
    return event(sender or subject, "m.room.member", content, state_key=subject, **unsigned)


def sync_with(room_id: str, events: list[Any]) -> SyncResponse:
    response = SyncResponse.from_dict({"next_batch": "s", "rooms": {"join": {room_id: {"timeline": {"events": []}, "state": {"events": []}}}}})
    response.rooms.join[room_id].timeline.events.extend(events)
    return response


class PlayersEngine:
    """The engine as the dispatcher uses it with several players: who plays, lines by author, rounds."""

    def __init__(self) -> None:
        self.playing: dict[str, str] = {ALICE: "Alice"}  # player -> persona, of those who play now
        self.played: dict[str, str] = {}  # and of those who left
        self.lines: dict[str, tuple[str, str]] = {}  # source id -> (player, text)
        self.answered: list[str] = []
        self.turns: list[tuple[str, ...]] = []  # the source ids each reply answered

    async def join_player(self, chat_id: str, player_id: str, display_name: str = "") -> PlayerInfo:
        self.playing[player_id] = display_name or player_id
        return PlayerInfo(player_id, self.playing[player_id], False, True)

    async def leave_player(self, chat_id: str, player_id: str) -> bool:
        if player_id not in self.playing:
            return False
        self.played[player_id] = self.playing.pop(player_id)
        return True

    async def players(self, chat_id: str) -> list[PlayerInfo]:
        return [*(PlayerInfo(p, name, p == ALICE, True) for p, name in self.playing.items()),
                *(PlayerInfo(p, name, False, False) for p, name in self.played.items())]

    async def receive_line(self, chat_id: str, text: str, source_id: str, *, player: str | None = None) -> bool:
        if source_id in self.lines:
            return False
        if (player or ALICE) not in self.playing:
            raise NotAPlayerError(player or ALICE, chat_id)
        self.lines[source_id] = (player or ALICE, text)
        return True

    async def line_answered(self, chat_id: str, source_id: str) -> None:
        self.answered.append(source_id)

    async def owed_lines(self) -> list[OwedLine]:
        return [OwedLine("chat-1", s, text, player) for s, (player, text) in self.lines.items() if s not in self.answered]

    async def post_turn(self, chat_id: str, text: str, source_id: str, *, player: str | None = None, replying_to: str | None = None):
        self.turns.append((source_id,))
        yield TurnUpdate("Wren Halloway", "wren", f"Re: {text}", done=True, turn_id=len(self.turns), answering=(player or ALICE,))

    async def post_round(self, chat_id: str, lines: list[Any]):
        self.turns.append(tuple(held.source_id for held in lines))
        players = tuple(dict.fromkeys(held.player for held in lines))
        yield TurnUpdate("Wren Halloway", "wren", "Re: " + " / ".join(held.text for held in lines), done=True,
                         turn_id=len(self.turns), answering=players)


@pytest.fixture
async def store(tmp_path: Path):
    opened = await StateStore.open(tmp_path / "adapter.sqlite3")
    await set_room_meta(opened, STORY)
    yield opened
    await opened.close()


def allowing(ctx: Ctx) -> Ctx:
    ctx.config.matrix.allowed_users = ["@*:localhost"]
    return ctx


def notices(ctx: Ctx) -> list[str]:
    return [e.content["body"] for e in ctx.sender.sent if isinstance(e, SendMessage) and e.content.get("msgtype") == "m.notice"]


async def test_a_friend_who_joins_plays_from_their_first_line_and_no_longer_once_they_leave(store: StateStore) -> None:
    ctx = allowing(Ctx(store, PlayersEngine()))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    hello = line(BOB, "Evening, all.")
    await dispatcher.dispatch_sync(sync_with("!story", [member(BOB, "invite", sender=ALICE), member(BOB, "join", "invite", name="Bob Marsh"), hello]))
    await dispatcher.idle()
    assert await room_players(store, "!story") == frozenset({BOB})
    assert ctx.engine.lines[hello.event_id] == (BOB, "Evening, all.") and ctx.engine.answered == [hello.event_id]
    assert any("**Bob Marsh** joins the story" in text for text in notices(ctx))

    await dispatcher.dispatch_sync(sync_with("!story", [member(BOB, "leave", "join")]))
    late = line(BOB, "Still here?")  # a line from before the leave, seen after it (a catch-up)
    await dispatcher.dispatch_sync(sync_with("!story", [late, line(BOB, "Hello?")]))
    await dispatcher.idle()
    assert await room_players(store, "!story") == frozenset() and BOB not in ctx.engine.playing
    assert late.event_id not in ctx.engine.lines
    told = notices(ctx)
    assert any("**Bob Marsh** has left the story" in text for text in told)
    assert len([text for text in told if "Only the players of this story are heard" in text]) == 1  # told once


async def test_a_removal_by_the_owner_is_told_but_one_by_remove_was_answered_already(store: StateStore) -> None:
    ctx = allowing(Ctx(store, PlayersEngine()))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_sync(sync_with("!story", [member(BOB, "join", "invite", name="Bob"), member(CAROL, "join", "invite", name="Carol")]))
    await dispatcher.dispatch_sync(sync_with("!story", [member(BOB, "leave", "join", sender=ALICE), member(CAROL, "leave", "join", sender=BOT)]))
    await dispatcher.idle()
    told = notices(ctx)
    assert any("**Bob** is no longer in the story" in text for text in told)
    assert not any("Carol" in text and "story." in text and "joins" not in text for text in told)
    assert ctx.engine.playing == {ALICE: "Alice"}


async def test_a_user_who_may_not_use_the_bot_is_turned_away(store: StateStore) -> None:
    ctx = allowing(Ctx(store, PlayersEngine()))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_sync(sync_with("!story", [member(MALLORY, "invite", sender=ALICE)]))
    await dispatcher.idle()
    (kick,) = [e for e in ctx.sender.sent if isinstance(e, Kick)]
    assert (kick.room_id, kick.user_id) == ("!story", MALLORY) and "allowed users" in kick.reason
    assert any(f"{MALLORY} cannot play here" in text and "invite is withdrawn" in text for text in notices(ctx))
    assert MALLORY not in ctx.engine.playing and await room_players(store, "!story") == frozenset()


async def test_in_rounds_the_lines_of_every_player_are_answered_together(store: StateStore) -> None:
    ctx = allowing(Ctx(store, PlayersEngine()))
    await set_room_meta(store, RoomMeta(**{**STORY.__dict__, "rounds": True}))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_sync(sync_with("!story", [member(BOB, "join", "invite", name="Bob")]))
    first, second = line(ALICE, "I light the lamp."), line(BOB, "I bar the door.")
    await dispatcher.dispatch_sync(sync_with("!story", [first]))
    await asyncio.sleep(0.05)
    assert ctx.engine.turns == [] and dispatcher.rounds.waiting("!story")  # waiting for Bob
    await dispatcher.dispatch_sync(sync_with("!story", [second]))
    await dispatcher.idle()
    assert ctx.engine.turns == [(first.event_id, second.event_id)]
    assert ctx.engine.answered == [first.event_id, second.event_id]
    (reply,) = [e for e in ctx.sender.sent if isinstance(e, SendMessage) and e.content.get("msgtype") == "m.text"]
    assert reply.content["body"] == "Re: I light the lamp. / I bar the door."


async def test_a_round_whose_time_is_up_is_answered_with_the_lines_it_has(store: StateStore) -> None:
    ctx = allowing(Ctx(store, PlayersEngine()))
    ctx.rounds.window_s = 0.2
    await set_room_meta(store, RoomMeta(**{**STORY.__dict__, "rounds": True}))
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    await dispatcher.dispatch_sync(sync_with("!story", [member(BOB, "join", "invite", name="Bob")]))
    alone = line(ALICE, "Anyone?")
    await dispatcher.dispatch_sync(sync_with("!story", [alone]))
    await asyncio.sleep(0.4)
    await dispatcher.idle()
    assert ctx.engine.turns == [(alone.event_id,)] and ctx.engine.answered == [alone.event_id]


async def test_a_round_a_stop_cut_short_is_answered_as_one_at_the_next_start(store: StateStore) -> None:
    ctx = allowing(Ctx(store, PlayersEngine()))
    await set_room_meta(store, RoomMeta(**{**STORY.__dict__, "rounds": True}))
    ctx.engine.playing[BOB] = "Bob"
    ctx.engine.lines = {"$a": (ALICE, "one"), "$b": (BOB, "two")}  # received, then the bot stopped
    dispatcher = Dispatcher(ctx)  # type: ignore[arg-type]
    assert await dispatcher.redeliver_pending() == 2
    await dispatcher.idle()
    assert ctx.engine.turns == [("$a", "$b")]
