"""Rebuilding the adapter's cache from the Space topology, before any live event is handled.

Matrix is the truth: each Space carries `org.rpbot.space` and each lobby or
story room `org.rpbot.room`, written by the bot. `plan_reconciliation` reads
them from the full-state sync (its `state` and `timeline` sections both: recent
state events arrive in the timeline), trusts only those the bot itself sent,
compares them with the cached rows the caller read and decides what to write;
it does no I/O.
`reconcile_from_space_topology` (called by startup) applies the plan:

- store rows that are missing or differ are written (a healthy store: none);
- the platform-chat-id counter is raised past every id in use;
- legacy story rooms whose `org.rpbot.room` lacks `platform_chat_id` get one,
  derived deterministically from the room id (`mx-legacy-<12 hex of sha256>`),
  written to the store and to the room state before anything is routed;
- a room that names a Space but is not yet its child is linked
  (`m.space.child`), and a player whose Space has no lobby or story is
  finished off by the normal onboarding steps, which skip what exists;
- a story room made before Element's room settings were part of a story room
  gets them (`im.vector.web.settings` hiding the bot's face switches, and power
  levels that keep them the bot's and let its owner remove a player), and a Lobby invite an older version left
  waiting is withdrawn (the Lobby is joined from the Space); these are returned,
  not sent, and the caller sends them once the live sync runs, so a homeserver's
  rate limit on many old rooms never holds the start.

- who plays in each story room is read from its membership: its allowed joined members
  besides the owner. The cache's rows follow, and the caller brings the engine's players in
  step (`player_changes`: a friend who joined while the bot was down plays, one who left no
  longer does) before any live event; a member who may not use the bot is removed, and such
  a member's invite withdrawn, once the bot is ready. Whether a story room answers in rounds
  is part of its `org.rpbot.room` state.

Nothing is created for a room that already has an identity.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from nio import SyncResponse

from adapter.matrix.context import BotContext
from adapter.matrix.outgoing import SendFailed, SendState
from adapter.matrix.players import NOT_ALLOWED_TO_PLAY
from adapter.matrix.room_types import RoomType
from adapter.matrix.spaces import ELEMENT_SETTINGS, HIDE_PROFILE_CHANGES, KICK_LEVEL, ROOM_STATE, SPACE_STATE
from adapter.matrix.store import (
    RoomMeta,
    UserMeta,
    all_room_meta,
    all_room_players,
    all_user_meta,
    raise_counter_to,
    set_room_meta,
    set_room_players,
    set_user_meta,
)
from core.errors import RpbotError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    rooms_seen: int
    rooms_restored: int
    users_restored: int
    backfilled: int = 0
    links_added: int = 0
    onboardings_resumed: int = 0
    # Owners whose onboarding a crash cut short (a Space without its lobby or first story). The
    # caller finishes them once the live sync runs: a new room is only usable after a sync shows it.
    users_to_finish: tuple[str, ...] = ()
    once_ready: tuple[SendState, ...] = ()  # for the caller to send once the live sync runs (`send_once_ready`)
    players_changed: int = 0  # players the engine took in, or let go, to match the story rooms' membership


@dataclass(frozen=True)
class StoryPlayers:
    """Who plays in a story room, as its membership says: its owner, and `players` (user id ->
    display name), its other allowed joined members."""

    room_id: str
    chat_id: str
    owner: str
    players: Mapping[str, str]


@dataclass
class ReconcilePlan:
    room_writes: list[RoomMeta] = field(default_factory=list)
    user_writes: list[UserMeta] = field(default_factory=list)
    state_writes: list[SendState] = field(default_factory=list)  # sent before anything is routed
    highest_platform_number: int = 0
    users_to_finish: list[str] = field(default_factory=list)
    once_ready: list[SendState] = field(default_factory=list)  # story rooms' Element settings, Lobby invites withdrawn
    stories: list[StoryPlayers] = field(default_factory=list)  # every story room's players, from its membership
    player_writes: dict[str, frozenset[str]] = field(default_factory=dict)  # room id -> players, where the cache differs
    rooms_seen: int = 0
    backfilled: int = 0
    links_added: int = 0


def legacy_platform_chat_id(room_id: str) -> str:
    """The documented, deterministic platform chat id of a legacy room that has none."""
    return "mx-legacy-" + hashlib.sha256(room_id.encode()).hexdigest()[:12]


def state_sources(response: SyncResponse) -> Iterator[tuple[str, dict[str, Any]]]:
    """(room_id, raw event) for every event of every joined room, `state` section then `timeline`
    (recent state events arrive in the timeline), oldest first, so later ones win."""
    for room_id, info in response.rooms.join.items():
        for event in [*info.state, *info.timeline.events]:
            yield room_id, getattr(event, "source", {}) or {}


def identity_events(response: SyncResponse, bot_user_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """room_id -> (event type, content) of the newest `org.rpbot.*` state the bot sent there."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for room_id, source in state_sources(response):
        if source.get("type") not in (SPACE_STATE, ROOM_STATE) or source.get("state_key") != "":
            continue
        if source.get("sender") != bot_user_id:
            log.warning("ignoring %s in %s sent by %s", source.get("type"), room_id, source.get("sender"))
            continue
        content = source.get("content")
        if isinstance(content, dict) and content:
            found[room_id] = (source["type"], content)
    return found


def current_state(response: SyncResponse) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(room_id, event type, state key) -> the newest state event of that key in the sync."""
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for room_id, source in state_sources(response):
        if isinstance(source.get("state_key"), str) and isinstance(source.get("type"), str):
            found[(room_id, source["type"], source["state_key"])] = source
    return found


def story_once_ready(room_id: str, state: Mapping[tuple[str, str, str], dict[str, Any]], bot_user_id: str) -> list[SendState]:
    """What a story room lacks of what a new one is made with: power levels that keep Element's
    settings the bot's and let the owner remove a player, then the settings that hide the bot's
    face switches."""
    writes = []
    levels = (state.get((room_id, "m.room.power_levels", "")) or {}).get("content")
    if isinstance(levels, dict) and ((levels.get("events") or {}).get(ELEMENT_SETTINGS) != 100 or levels.get("kick") != KICK_LEVEL):
        events = {**(levels.get("events") or {}), ELEMENT_SETTINGS: 100}
        writes.append(SendState(room_id, "m.room.power_levels", {**levels, "events": events, "kick": KICK_LEVEL}))
    settings = state.get((room_id, ELEMENT_SETTINGS, "")) or {}
    content: dict[str, Any] = settings["content"] if isinstance(settings.get("content"), dict) else {}
    if settings.get("sender") != bot_user_id or any(content.get(key) is not False for key in HIDE_PROFILE_CHANGES):
        writes.append(SendState(room_id, ELEMENT_SETTINGS, {**content, **HIDE_PROFILE_CHANGES}))
    return writes


def withdrawn_lobby_invite(room_id: str, owner: str, state: Mapping[tuple[str, str, str], dict[str, Any]]) -> list[SendState]:
    """A Lobby invite still waiting (an older version invited the player to the Lobby too), withdrawn:
    the Lobby is joined from the Space, and an invite left waiting is a badge that never goes."""
    member = (state.get((room_id, "m.room.member", owner)) or {}).get("content") or {}
    if member.get("membership") != "invite":
        return []
    return [SendState(room_id, "m.room.member", {"membership": "leave", "reason": "The Lobby opens from your Space."}, state_key=owner)]


def story_members(room_id: str, state: Mapping[tuple[str, str, str], dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """user id -> (membership, display name) of every member event of `room_id` in the sync."""
    found = {}
    for (room, event_type, user_id), source in state.items():
        if room == room_id and event_type == "m.room.member":
            content = source.get("content") or {}
            name = content.get("displayname")
            found[user_id] = (str(content.get("membership")), name if isinstance(name, str) else "")
    return found


def story_players(
    room_id: str, chat_id: str, owner: str, state: Mapping[tuple[str, str, str], dict[str, Any]], bot_user_id: str,
    allowed: Callable[[str], bool],
) -> tuple[StoryPlayers, list[SendState]]:
    """Who plays in a story room (its allowed joined members besides the owner and the bot), and
    the removals of members who may not use the bot (joined, or invited: the invite withdrawn)."""
    players: dict[str, str] = {}
    turned_away: list[SendState] = []
    for user_id, (membership, name) in sorted(story_members(room_id, state).items()):
        if user_id in (owner, bot_user_id) or membership not in ("join", "invite"):
            continue
        if not allowed(user_id):
            turned_away.append(SendState(room_id, "m.room.member", {"membership": "leave", "reason": NOT_ALLOWED_TO_PLAY}, state_key=user_id))
        elif membership == "join":
            players[user_id] = name
    return StoryPlayers(room_id, chat_id, owner, players), turned_away


def player_changes(wanted: StoryPlayers, playing: frozenset[str]) -> tuple[dict[str, str], frozenset[str]]:
    """What brings the engine's players of a story (`playing`: those besides its owner who play
    now) in step with the room's membership: who joins (user id -> display name), who leaves."""
    joining = {user_id: name for user_id, name in wanted.players.items() if user_id not in playing}
    return joining, frozenset(playing - set(wanted.players))


def space_children(response: SyncResponse) -> dict[str, set[str]]:
    """space_id -> child room ids linked with a `via` (an unlinked child has empty content)."""
    children: dict[str, dict[str, bool]] = {}
    for room_id, source in state_sources(response):
        if source.get("type") == "m.space.child" and source.get("state_key"):
            children.setdefault(room_id, {})[source["state_key"]] = bool((source.get("content") or {}).get("via"))
    return {space: {child for child, linked in kids.items() if linked} for space, kids in children.items()}


def _platform_number(platform_chat_id: str | None) -> int:
    if platform_chat_id and platform_chat_id.startswith("mx-") and platform_chat_id[3:].isdigit():
        return int(platform_chat_id[3:])
    return 0


def plan_reconciliation(
    response: SyncResponse,
    cached_rooms: Mapping[str, RoomMeta],
    cached_users: Mapping[str, UserMeta],
    bot_user_id: str,
    server_name: str,
    *,
    cached_players: Mapping[str, frozenset[str]] | None = None,
    allowed: Callable[[str], bool] = lambda _user_id: False,
) -> ReconcilePlan:
    """What to write so that the cache (`cached_rooms`, `cached_users`, `cached_players`: room id ->
    who plays there besides its owner) matches the room state in the full-state sync `response`,
    given who may use the bot (`allowed`); no I/O."""
    plan = ReconcilePlan()
    identities = identity_events(response, bot_user_id)
    state = current_state(response)
    linked = space_children(response)
    plan.rooms_seen = len(identities)
    spaces_of: dict[str, str] = {}
    lobbies_of: dict[str, str] = {}
    stories_of: dict[str, int] = {}
    for room_id, (event_type, content) in sorted(identities.items()):
        owner = content.get("owner")
        if not isinstance(owner, str):
            continue
        if event_type == SPACE_STATE:
            wanted = RoomMeta(room_id, RoomType.SPACE, owner, space_id=room_id)
            spaces_of[owner] = room_id
        else:
            stated_type = content.get("room_type")
            space_id = content.get("space_id")
            if stated_type not in (RoomType.LOBBY, RoomType.STORY) or not isinstance(space_id, str):
                continue
            room_type = RoomType(stated_type)
            platform_chat_id = content.get("platform_chat_id")
            if room_type == RoomType.STORY and not platform_chat_id:
                platform_chat_id = legacy_platform_chat_id(room_id)
                plan.state_writes.append(SendState(room_id, ROOM_STATE, {**content, "platform_chat_id": platform_chat_id}))
                plan.backfilled += 1
            chat_id = content.get("chat_id")
            wanted = RoomMeta(room_id, room_type, owner, space_id, chat_id, platform_chat_id, rounds=content.get("rounds") is True)
            if room_type == RoomType.LOBBY:
                lobbies_of[owner] = room_id
                plan.once_ready.extend(withdrawn_lobby_invite(room_id, owner, state))
            else:
                stories_of[owner] = stories_of.get(owner, 0) + 1
                plan.once_ready.extend(story_once_ready(room_id, state, bot_user_id))
                if isinstance(chat_id, str):
                    players, turned_away = story_players(room_id, chat_id, owner, state, bot_user_id, allowed)
                    plan.stories.append(players)
                    plan.once_ready.extend(turned_away)
                    if (cached_players or {}).get(room_id, frozenset()) != set(players.players):
                        plan.player_writes[room_id] = frozenset(players.players)
            if space_id in identities and room_id not in linked.get(space_id, set()):
                order = "0000" if room_type == RoomType.LOBBY else "1" + room_id
                plan.state_writes.append(
                    SendState(space_id, "m.space.child", {"via": [server_name], "order": order[:50], "suggested": True}, state_key=room_id)
                )
                plan.links_added += 1
            plan.highest_platform_number = max(plan.highest_platform_number, _platform_number(platform_chat_id))
        if cached_rooms.get(room_id) != wanted:
            plan.room_writes.append(wanted)
    for owner, space_id in spaces_of.items():
        current = cached_users.get(owner)
        wanted_user = UserMeta(owner, space_id, lobbies_of.get(owner) or (current.lobby_room_id if current else None))
        if current != wanted_user:
            plan.user_writes.append(wanted_user)
        if owner not in lobbies_of or not stories_of.get(owner):
            plan.users_to_finish.append(owner)
    for room in cached_rooms.values():  # the bot took a player's invite, then stopped before their Space was made
        owner = room.matrix_user_id
        if room.room_type == RoomType.INVITE and owner not in spaces_of and owner not in cached_users and allowed(owner):
            if owner not in plan.users_to_finish:
                plan.users_to_finish.append(owner)
    return plan


async def reconcile_from_space_topology(ctx: BotContext, response: SyncResponse | None) -> ReconcileReport:
    """Rebuild the cache from Matrix state; called at startup before any live event is handled."""
    if response is None:
        return ReconcileReport(0, 0, 0)
    log.info("reconciling from a full-state sync of %d joined rooms", len(response.rooms.join))
    plan = plan_reconciliation(
        response, await all_room_meta(ctx.store), await all_user_meta(ctx.store), ctx.bot_user_id, ctx.server_name,
        cached_players=await all_room_players(ctx.store), allowed=ctx.config.matrix.is_allowed,
    )
    for state in plan.state_writes:
        await ctx.sender.send(state)
    for room in plan.room_writes:
        await set_room_meta(ctx.store, room)
    for user in plan.user_writes:
        await set_user_meta(ctx.store, user)
    for room_id, players in plan.player_writes.items():
        await set_room_players(ctx.store, room_id, players)
    players_changed = 0
    for story in plan.stories:
        players_changed += await bring_players_in_step(ctx, story)
    if plan.highest_platform_number:
        await raise_counter_to(ctx.store, "platform_chat_id", plan.highest_platform_number)
    report = ReconcileReport(
        plan.rooms_seen, len(plan.room_writes), len(plan.user_writes), plan.backfilled, plan.links_added,
        len(plan.users_to_finish), tuple(plan.users_to_finish), tuple(plan.once_ready), players_changed,
    )
    log.info("reconciled: %s", report)
    return report


async def bring_players_in_step(ctx: BotContext, story: StoryPlayers) -> int:
    """Make the engine's players of one story those its room's membership says (`player_changes`);
    returns how many changed. A story the engine does not know is left alone, and logged."""
    try:
        playing = frozenset(p.player_id for p in await ctx.engine.players(story.chat_id) if p.active and not p.is_owner)
        joining, leaving = player_changes(story, playing)
        for user_id, name in joining.items():
            await ctx.engine.join_player(story.chat_id, user_id, name)
        for user_id in leaving:
            await ctx.engine.leave_player(story.chat_id, user_id)
    except RpbotError as exc:
        log.warning("the players of %s could not be brought in step: %s", story.room_id, exc, extra={"chat_id": story.chat_id})
        return 0
    if joining or leaving:
        log.info("players of the story: %d joined, %d left while the bot was away", len(joining), len(leaving),
                 extra={"room_id": story.room_id, "chat_id": story.chat_id})
    return len(joining) + len(leaving)


async def send_once_ready(ctx: BotContext, writes: tuple[SendState, ...]) -> None:
    """Send what the reconciliation left for once the bot is ready (story rooms' Element settings,
    Lobby invites withdrawn); a refusal in one room does not stop the others."""
    for write in writes:
        try:
            await ctx.sender.send(write)
        except SendFailed as exc:
            log.warning("could not write %s in %s: %s", write.event_type, write.room_id, exc)
    if writes:
        log.info("sent %d state events left for once the bot is ready", len(writes))
