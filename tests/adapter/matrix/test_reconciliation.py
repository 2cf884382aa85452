"""Unit tests of `reconcile_from_space_topology`: the cache rebuilt from Matrix state, and nothing more.

Sync responses are real nio `SyncResponse`s parsed from sync JSON; the store is a
real `adapter.sqlite3`; the sender records instead of sending.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from nio import SyncResponse

from adapter.config import Config, MatrixConfig, StorageConfig
from adapter.matrix.handlers.onboarding import handle_invite
from adapter.matrix.reconciliation import (
    ReconcileReport,
    StoryPlayers,
    legacy_platform_chat_id,
    plan_reconciliation,
    player_changes,
    reconcile_from_space_topology,
    send_once_ready,
)
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import (
    RoomMeta,
    StateStore,
    UserMeta,
    all_room_meta,
    all_user_meta,
    get_room_meta,
    get_user_meta,
    next_platform_chat_id,
    room_players,
    set_room_meta,
    set_room_players,
)
from core.engine import PlayerInfo
from core.errors import ChatNotFoundError
from core.keyed_locks import KeyedLocks

BOT = "@rpbot:localhost"
ALICE = "@alice:localhost"
_ids = itertools.count(1)


def state_event(event_type: str, content: dict[str, Any], *, state_key: str = "", sender: str = BOT) -> dict[str, Any]:
    return {
        "type": event_type,
        "state_key": state_key,
        "content": content,
        "sender": sender,
        "event_id": f"$e{next(_ids)}",
        "origin_server_ts": 1,
    }


def sync(rooms: dict[str, dict[str, list[dict[str, Any]]]]) -> SyncResponse:
    """rooms: room_id -> {"state": [...], "timeline": [...]} (either may be missing)."""
    join = {
        room_id: {
            "state": {"events": parts.get("state", [])},
            "timeline": {"events": parts.get("timeline", []), "limited": False, "prev_batch": "p"},
            "ephemeral": {"events": []},
            "account_data": {"events": []},
            "summary": {},
            "unread_notifications": {},
        }
        for room_id, parts in rooms.items()
    }
    response = SyncResponse.from_dict({"next_batch": "s1", "rooms": {"join": join, "invite": {}, "leave": {}}})
    assert isinstance(response, SyncResponse), response
    return response


def alice_topology(*, legacy: bool = False, unlinked_story: bool = False) -> SyncResponse:
    return sync(alice_rooms(legacy=legacy, unlinked_story=unlinked_story))


def alice_rooms(*, legacy: bool = False, unlinked_story: bool = False) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Alice's Space, Lobby and story, as sync sections."""
    story_identity = {"owner": ALICE, "room_type": "chat", "space_id": "!space", "chat_id": "chat-a", "platform_chat_id": "mx-7", "version": 1}
    if legacy:
        del story_identity["platform_chat_id"]
    space_state = [
        state_event("org.rpbot.space", {"owner": ALICE, "version": 1}),
        state_event("m.space.child", {"via": ["localhost"]}, state_key="!lobby"),
    ]
    if not unlinked_story:
        space_state.append(state_event("m.space.child", {"via": ["localhost"]}, state_key="!story"))
    return {
        "!space": {"state": space_state},
        "!lobby": {
            "state": [
                state_event(
                    "org.rpbot.room",
                    {"owner": ALICE, "room_type": "lobby", "space_id": "!space", "chat_id": None, "platform_chat_id": None, "version": 1},
                )
            ]
        },
        # A recent state event arrives in the timeline section, not in state.
        "!story": {"timeline": [state_event("org.rpbot.room", story_identity)]},
    }


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, event: Any) -> str:
        self.sent.append(event)
        return f"$sent{len(self.sent)}"


class PlayersEngine:
    """The engine's players, as reconciliation reads and changes them (a stand-in keeping them in a dict)."""

    def __init__(self, playing: dict[str, dict[str, str]] | None = None) -> None:
        self.playing = playing or {}  # chat id -> user id -> persona name (the owner's is not kept here)
        self.calls: list[tuple[str, ...]] = []

    async def players(self, chat_id: str) -> list[PlayerInfo]:
        if chat_id not in self.playing:
            raise ChatNotFoundError(chat_id)
        return [PlayerInfo(ALICE, "Alice", True, True), *(PlayerInfo(u, n, False, True) for u, n in self.playing[chat_id].items())]

    async def join_player(self, chat_id: str, player_id: str, display_name: str = "") -> PlayerInfo:
        self.calls.append(("join", chat_id, player_id, display_name))
        self.playing[chat_id][player_id] = display_name
        return PlayerInfo(player_id, display_name, False, True)

    async def leave_player(self, chat_id: str, player_id: str) -> bool:
        self.calls.append(("leave", chat_id, player_id))
        return self.playing[chat_id].pop(player_id, None) is not None


class Context:
    """Just what reconciliation uses of BotContext."""

    def __init__(self, store: StateStore, engine: PlayersEngine | None = None) -> None:

        self.store = store
        self.sender = RecordingSender()
        self.bot_user_id = BOT
        self.server_name = "localhost"
        self.user_locks = KeyedLocks()
        self.engine = engine or PlayersEngine({"chat-a": {}})
        self.config = Config(matrix=MatrixConfig(homeserver="http://127.0.0.1:1", user_id=BOT, password="x",
                                                 allowed_users=["@*:localhost"]), storage=StorageConfig(data_dir="/nonexistent"))


@pytest.fixture
async def store(tmp_path: Path):
    opened = await StateStore.open(tmp_path / "adapter.sqlite3")
    yield opened
    await opened.close()


async def test_an_empty_store_is_rebuilt_from_topology_without_sending(store: StateStore) -> None:
    ctx = Context(store)
    report = await reconcile_from_space_topology(ctx, alice_topology())  # type: ignore[arg-type]

    assert report.rooms_restored == 3 and report.users_restored == 1
    assert await get_user_meta(store, ALICE) == UserMeta(ALICE, "!space", "!lobby")
    assert await get_room_meta(store, "!story") == RoomMeta("!story", RoomType.STORY, ALICE, "!space", "chat-a", "mx-7")
    assert await get_room_meta(store, "!lobby") == RoomMeta("!lobby", RoomType.LOBBY, ALICE, "!space")
    assert ctx.sender.sent == []
    assert await next_platform_chat_id(store) == "mx-8"  # a new chat never reuses an id in use


async def test_a_healthy_store_is_left_alone(store: StateStore) -> None:
    ctx = Context(store)
    await reconcile_from_space_topology(ctx, alice_topology())  # type: ignore[arg-type]
    plan = plan_reconciliation(alice_topology(), await all_room_meta(store), await all_user_meta(store), BOT, "localhost")
    assert plan.room_writes == [] and plan.user_writes == [] and plan.state_writes == [] and plan.users_to_finish == []
    report = await reconcile_from_space_topology(ctx, alice_topology())  # type: ignore[arg-type]
    assert (report.rooms_restored, report.users_restored) == (0, 0)
    assert ctx.sender.sent == []


async def test_a_partial_store_is_completed(store: StateStore) -> None:
    await set_room_meta(store, RoomMeta("!lobby", RoomType.LOBBY, ALICE, "!space"))
    report = await reconcile_from_space_topology(Context(store), alice_topology())  # type: ignore[arg-type]
    assert report.rooms_restored == 2
    assert await get_room_meta(store, "!story") is not None


async def test_identity_state_from_anyone_but_the_bot_is_not_trusted(store: StateStore) -> None:
    forged = sync(
        {
            "!evil": {
                "state": [
                    state_event(
                        "org.rpbot.room",
                        {
                            "owner": "@mallory:localhost", "room_type": "chat", "space_id": "!space",
                            "chat_id": "chat-a", "platform_chat_id": "mx-7", "version": 1,
                        },
                        sender="@mallory:localhost",
                    )
                ]
            }
        }
    )
    report = await reconcile_from_space_topology(Context(store), forged)  # type: ignore[arg-type]
    assert report.rooms_seen == 0
    assert await get_room_meta(store, "!evil") is None


async def test_a_legacy_room_gets_a_deterministic_platform_chat_id_persisted_before_routing(store: StateStore) -> None:
    ctx = Context(store)
    report = await reconcile_from_space_topology(ctx, alice_topology(legacy=True))  # type: ignore[arg-type]

    expected = legacy_platform_chat_id("!story")
    assert expected == legacy_platform_chat_id("!story") and expected.startswith("mx-legacy-")
    assert report.backfilled == 1
    (state,) = ctx.sender.sent
    assert (state.room_id, state.event_type) == ("!story", "org.rpbot.room")
    assert state.content["platform_chat_id"] == expected and state.content["chat_id"] == "chat-a"
    assert (await get_room_meta(store, "!story")).platform_chat_id == expected


async def test_a_room_not_yet_linked_into_its_space_is_linked_not_recreated(store: StateStore) -> None:
    ctx = Context(store)
    report = await reconcile_from_space_topology(ctx, alice_topology(unlinked_story=True))  # type: ignore[arg-type]
    assert report.links_added == 1
    (link,) = ctx.sender.sent
    assert (link.room_id, link.event_type, link.state_key) == ("!space", "m.space.child", "!story")
    assert link.content["via"] == ["localhost"]


def with_story_state(response_rooms: dict[str, Any], *events: dict[str, Any]) -> SyncResponse:
    rooms = {room_id: dict(parts) for room_id, parts in response_rooms.items()}
    rooms["!story"] = {"timeline": [*rooms["!story"]["timeline"], *events]}
    return sync(rooms)


STORY_LEVELS = {"users": {ALICE: 50}, "state_default": 50, "events": {"org.rpbot.room": 100}}


async def test_a_story_room_without_elements_settings_gets_them_and_the_power_to_keep_them(store: StateStore) -> None:
    """Rooms made before story rooms carried `im.vector.web.settings` get it at start-up, after the bot is ready."""
    ctx = Context(store)
    old_room = with_story_state(alice_rooms(), state_event("m.room.power_levels", STORY_LEVELS))
    report = await reconcile_from_space_topology(ctx, old_room)  # type: ignore[arg-type]
    assert ctx.sender.sent == []  # not sent before the live sync: a rate limit on many rooms must not hold the start
    levels, settings = report.once_ready
    assert (levels.room_id, levels.event_type) == ("!story", "m.room.power_levels")
    assert levels.content["events"] == {"org.rpbot.room": 100, "im.vector.web.settings": 100}
    assert levels.content["kick"] == 50  # the owner removes a player from Element too
    assert levels.content["users"] == {ALICE: 50}  # the rest of the power levels unchanged
    assert (settings.room_id, settings.event_type, settings.state_key) == ("!story", "im.vector.web.settings", "")
    assert settings.content == {"showDisplaynameChanges": False, "showAvatarChanges": False}
    await send_once_ready(ctx, report.once_ready)  # type: ignore[arg-type]
    assert ctx.sender.sent == [levels, settings]


def test_a_story_room_that_has_them_or_a_lobby_needs_no_settings() -> None:
    made_now = with_story_state(
        alice_rooms(),
        state_event("m.room.power_levels", {**STORY_LEVELS, "kick": 50, "events": {"im.vector.web.settings": 100}}),
        state_event("im.vector.web.settings", {"showDisplaynameChanges": False, "showAvatarChanges": False}),
    )
    assert plan_reconciliation(made_now, {}, {}, BOT, "localhost").once_ready == []
    forged = with_story_state(  # a setting only the bot may write, from someone else: written again
        alice_rooms(),
        state_event("m.room.power_levels", {**STORY_LEVELS, "kick": 50, "events": {"im.vector.web.settings": 100}}),
        state_event("im.vector.web.settings", {"showDisplaynameChanges": False, "showAvatarChanges": False}, sender=ALICE),
    )
    assert [w.event_type for w in plan_reconciliation(forged, {}, {}, BOT, "localhost").once_ready] == ["im.vector.web.settings"]


def test_a_lobby_invite_an_older_version_left_waiting_is_withdrawn_once_the_bot_is_ready() -> None:
    rooms = alice_rooms()
    rooms["!lobby"] = {"state": [*rooms["!lobby"]["state"], state_event("m.room.member", {"membership": "invite"}, state_key=ALICE)]}
    (withdrawal,) = plan_reconciliation(sync(rooms), {}, {}, BOT, "localhost").once_ready[:1]
    assert (withdrawal.room_id, withdrawal.event_type, withdrawal.state_key) == ("!lobby", "m.room.member", ALICE)
    assert withdrawal.content["membership"] == "leave"
    rooms["!lobby"]["state"][-1] = state_event("m.room.member", {"membership": "join"}, state_key=ALICE)
    assert [w for w in plan_reconciliation(sync(rooms), {}, {}, BOT, "localhost").once_ready if w.room_id == "!lobby"] == []


class StoppedWhileJoining(RecordingSender):
    async def join(self, room_id: str) -> bool:
        raise asyncio.CancelledError  # the bot stopped while its join was on its way (the homeserver may well complete it)


async def test_an_onboarding_cut_before_the_space_was_made_is_finished(store: StateStore) -> None:
    """The bot stopped while joining a player's invite room, before their Space existed: the invite was
    noted first, and that onboarding is finished at the next start, as one cut after the Space was made is."""
    ctx = Context(store)
    ctx.sender = StoppedWhileJoining()
    with pytest.raises(asyncio.CancelledError):
        await handle_invite(ctx, "!dm", ALICE)  # type: ignore[arg-type]
    cached = await all_room_meta(store)
    assert cached == {"!dm": RoomMeta("!dm", RoomType.INVITE, ALICE)}

    anyone = lambda _user_id: True  # noqa: E731
    assert plan_reconciliation(sync({}), cached, {}, BOT, "localhost", allowed=anyone).users_to_finish == [ALICE]
    assert plan_reconciliation(sync({}), cached, {}, BOT, "localhost", allowed=lambda _user_id: False).users_to_finish == []
    assert plan_reconciliation(alice_topology(), cached, {}, BOT, "localhost", allowed=anyone).users_to_finish == []


async def test_startup_reconciles_before_any_live_event_is_dispatched(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MatrixBot.start: login -> room version -> own profile -> full-state sync -> reconcile -> redeliver -> catch up; the live loop only after."""
    import adapter.matrix.bot as bot_module
    from adapter.config import Config, MatrixConfig, StorageConfig

    calls: list[str] = []

    class FakeClient:
        user_id, device_id, next_batch, olm, rooms = BOT, "DEV", None, None, {}

        async def close(self) -> None:
            pass

    async def fake_login(self):
        calls.append("login")
        return FakeClient()

    async def fake_room_version(client):
        calls.append("room_version")
        return "12"

    async def fake_own_profile(ctx):
        calls.append("own_profile")
        return False

    async def fake_full_state_sync(client):
        calls.append("full_state_sync")
        return alice_topology()

    async def fake_reconcile(ctx, response):
        calls.append("reconcile")
        return ReconcileReport(0, 0, 0)

    monkeypatch.setattr(bot_module.MatrixBot, "login", fake_login)
    monkeypatch.setattr(bot_module, "room_version_for", fake_room_version)
    monkeypatch.setattr(bot_module, "ensure_own_profile", fake_own_profile)
    monkeypatch.setattr(bot_module, "full_state_sync", fake_full_state_sync)
    monkeypatch.setattr(bot_module, "reconcile_from_space_topology", fake_reconcile)
    monkeypatch.setattr(bot_module.Dispatcher, "redeliver_pending", lambda self: _record(calls, "redeliver"))
    monkeypatch.setattr(
        bot_module.Dispatcher, "dispatch_sync", lambda self, r, include_timeline=True: _record(calls, f"dispatch(timeline={include_timeline})")
    )
    monkeypatch.setattr(bot_module.Dispatcher, "catch_up", lambda self, r, **kwargs: _record(calls, "catch_up"))
    config = Config(matrix=MatrixConfig(homeserver="http://127.0.0.1:1", user_id=BOT, password="x"), storage=StorageConfig(data_dir=tmp_path))
    bot = bot_module.MatrixBot(config, engine=None)  # type: ignore[arg-type]
    await bot.start()
    await bot.store.close()
    assert calls == ["login", "room_version", "own_profile", "full_state_sync", "reconcile", "redeliver", "dispatch(timeline=False)", "catch_up"]


async def _record(calls: list[str], name: str) -> int:
    calls.append(name)
    return 0


BOB, CAROL, DAN, MALLORY, EVE = "@bob:localhost", "@carol:localhost", "@dan:localhost", "@mallory:elsewhere", "@eve:elsewhere"


def member_state(user_id: str, membership: str, name: str | None = None) -> dict[str, Any]:
    content = {"membership": membership, **({"displayname": name} if name else {})}
    return state_event("m.room.member", content, state_key=user_id, sender=user_id)


def story_with_members() -> SyncResponse:
    """Alice's story room as a full-state sync shows its members: Bob joined (allowed), Carol invited,
    Dan gone, Mallory joined and Eve invited though neither may use the bot."""
    return with_story_state(
        alice_rooms(),
        member_state(ALICE, "join", "Alice"), member_state(BOT, "join", "Wren Halloway"), member_state(BOB, "join", "Bob Marsh"),
        member_state(CAROL, "invite"), member_state(DAN, "leave"), member_state(MALLORY, "join"), member_state(EVE, "invite"),
    )


def allowed(user_id: str) -> bool:
    return user_id.endswith(":localhost")


def test_the_players_of_a_story_room_are_read_from_its_membership() -> None:
    plan = plan_reconciliation(story_with_members(), {}, {}, BOT, "localhost", allowed=allowed)
    assert plan.stories == [StoryPlayers("!story", "chat-a", ALICE, {BOB: "Bob Marsh"})]
    assert plan.player_writes == {"!story": frozenset({BOB})}
    turned_away = [w for w in plan.once_ready if w.event_type == "m.room.member"]
    assert [(w.room_id, w.state_key, w.content["membership"]) for w in turned_away] == [("!story", EVE, "leave"), ("!story", MALLORY, "leave")]
    assert all("not on its list of allowed users" in w.content["reason"] for w in turned_away)
    in_step = plan_reconciliation(story_with_members(), {}, {}, BOT, "localhost", cached_players={"!story": frozenset({BOB})}, allowed=allowed)
    assert in_step.player_writes == {}


def test_the_engine_is_told_who_joined_and_who_left_while_the_bot_was_away() -> None:
    wanted = StoryPlayers("!story", "chat-a", ALICE, {BOB: "Bob Marsh", CAROL: ""})
    assert player_changes(wanted, frozenset({CAROL, DAN})) == ({BOB: "Bob Marsh"}, frozenset({DAN}))
    assert player_changes(wanted, frozenset({BOB, CAROL})) == ({}, frozenset())


async def test_startup_brings_the_cache_and_the_engine_in_step_with_membership(store: StateStore) -> None:
    engine = PlayersEngine({"chat-a": {DAN: "Dan"}})  # Dan left while the bot was down, Bob joined
    ctx = Context(store, engine)
    await set_room_players(store, "!story", frozenset({DAN}))
    report = await reconcile_from_space_topology(ctx, story_with_members())  # type: ignore[arg-type]
    assert await room_players(store, "!story") == frozenset({BOB})
    assert sorted(engine.calls) == [("join", "chat-a", BOB, "Bob Marsh"), ("leave", "chat-a", DAN)]
    assert report.players_changed == 2 and ctx.sender.sent == []  # Mallory and Eve are turned away once the bot is ready
    again = await reconcile_from_space_topology(ctx, story_with_members())  # type: ignore[arg-type]
    assert again.players_changed == 0 and len(engine.calls) == 2


async def test_a_story_the_engine_does_not_know_leaves_the_start_going(store: StateStore) -> None:
    ctx = Context(store, PlayersEngine({}))
    report = await reconcile_from_space_topology(ctx, story_with_members())  # type: ignore[arg-type]
    assert report.players_changed == 0 and await room_players(store, "!story") == frozenset({BOB})


def test_a_story_room_in_rounds_says_so_in_its_identity() -> None:
    rooms = alice_rooms()
    identity = rooms["!story"]["timeline"][0]
    rooms["!story"]["timeline"].append(state_event("org.rpbot.room", {**identity["content"], "rounds": True}))
    (story,) = [r for r in plan_reconciliation(sync(rooms), {}, {}, BOT, "localhost").room_writes if r.room_id == "!story"]
    assert story.rounds is True
