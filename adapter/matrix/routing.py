"""What to do about one Matrix event: a pure decision, no I/O.

A player's line in a story room is taken for the story; an edit of it (`m.replace`) asks
to re-run that turn, a deletion (`m.room.redaction`) to take it back; reactions on a reply are
the story's controls (🔄 redo, ◀ ▶ another take, ⏩ go on, ⏹ stop). A story room may hold
several players: its owner, and the allowed users who joined it. A member event there makes
a player (an allowed user joined), ends one (they left, or were removed), or turns away a user
who is not allowed (invited or joined); lines from anyone who does not play there are not taken.

`route(room_id, event, room, bot_user_id, players=..., allowed=...)` looks only at the event,
the room it came in, the cached record of that room (None for a room the bot has not bound),
the bot's own id, who plays in the room besides its owner (the cache, rebuilt from the room's
membership) and who may use the bot at all, and returns one action. The dispatcher performs it (`adapter.matrix.dispatcher`), through the room's
object (`adapter.matrix.rooms`) and `MatrixSender`. Keeping the decision pure makes
every rule here testable with nothing but events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nio import (
    MegolmEvent,
    ReactionEvent,
    RedactionEvent,
    RoomEncryptedMedia,
    RoomMemberEvent,
    RoomMessageMedia,
    RoomMessageText,
)

from adapter.matrix.room_types import LOBBY_ROOMS, STORY_ROOMS
from adapter.matrix.store import RoomMeta

NOT_A_STORY_ROOM = "Stories are told in their own rooms; this one is for commands. Type `!help` to see what you can do here."
UPLOAD_IN_LOBBY = "To add this character, reply to the file with `!import`."
UPLOAD_IN_STORY = (
    "Files are not part of the story. To add SillyTavern world info (.json) to its lore, reply to the file with "
    "`!lore import`; to add a character card, upload it in the Lobby and reply to it with `!import`."
)
REACTIONS_IN_STORY_ROOMS = (
    "React to a reply in a story room (🔄 redo, ◀ ▶ another take, ⏩ go on, ⏹ stop): there is nothing to change here."
)
EDIT_INTO_COMMAND = "An edit stays your line in the story: send a command as a new message."
REDO, STOP, EARLIER_TAKE, LATER_TAKE, GO_ON = "🔄", "⏹", "◀", "▶", "⏩"


@dataclass(frozen=True)
class Ignore:
    """Nothing to do (the bot's own event, an edit, a reaction that is not an action...)."""

    why: str


@dataclass(frozen=True)
class AwaitKey:
    """A message we cannot decrypt yet: keep it and ask for its key."""

    room_id: str
    event: MegolmEvent


@dataclass(frozen=True)
class BindRoom:
    """A room the bot is in but has no record of: bind it if the sender may play, then route again."""

    room_id: str
    sender: str


@dataclass(frozen=True)
class TellStranger:
    """Someone who does not play in the room spoke: tell them once whose story this is."""

    room_id: str
    owner: str
    sender: str
    event_id: str


@dataclass(frozen=True)
class Tell:
    """Answer the event with a notice (what to do instead)."""

    room_id: str
    event_id: str
    purpose: str
    text: str


@dataclass(frozen=True)
class TakeLine:
    """A player's in-story line: hand it to the engine, then answer it in the room's turn."""

    room_id: str
    chat_id: str
    text: str
    event_id: str
    reply_to: str | None = None  # the message the line replies to (a character's, perhaps)
    player: str | None = None  # who said it (None: the story's owner)


@dataclass(frozen=True)
class PlayerJoined:
    """An allowed user joined a story room: they play in the story from now on, as `display_name`
    unless they chose a persona."""

    room_id: str
    chat_id: str
    user_id: str
    display_name: str
    event_id: str


@dataclass(frozen=True)
class PlayerLeft:
    """A player left a story room (`removed_by`: who removed them; None when they left themselves)."""

    room_id: str
    chat_id: str
    user_id: str
    event_id: str
    removed_by: str | None = None


@dataclass(frozen=True)
class TurnAway:
    """A user who may not use the bot was invited to a story room (`joined`: or joined it): the
    invite is withdrawn (they are removed), and the room is told why."""

    room_id: str
    user_id: str
    event_id: str
    joined: bool = False


@dataclass(frozen=True)
class RunCommand:
    """A `!command`, run in the room's turn (`!stop` at once, not queued behind what it stops)."""

    room_id: str
    text: str
    event_id: str
    sender: str
    reply_to: str | None = None
    at_once: bool = False
    mentions: tuple[str, ...] = ()  # the users the line mentions (an Element pill: `!invite` with a name picked from a list)


@dataclass(frozen=True)
class Stop:
    """Stop the reply being written (⏹)."""

    room_id: str
    event_id: str


@dataclass(frozen=True)
class Redo:
    """Regenerate the newest reply (🔄 on `reacts_to`, or `!regen` when `reacts_to` is None)."""

    room_id: str
    event_id: str
    reacts_to: str | None = None


@dataclass(frozen=True)
class EditLine:
    """The player edited their line `line_event_id` (an `m.replace`, `event_id`): it now reads `text`."""

    room_id: str
    chat_id: str
    line_event_id: str
    text: str
    event_id: str
    player: str | None = None  # who edited it (only its author may)


@dataclass(frozen=True)
class TakeBack:
    """The player deleted (redacted) `redacted_event_id` in their story room."""

    room_id: str
    redacted_event_id: str
    event_id: str
    player: str | None = None  # who deleted it (only a line's author may take it back)


@dataclass(frozen=True)
class SwitchTake:
    """Show another take of the newest reply: `step` takes on (◀ -1, ▶ +1, on `reacts_to`), or take
    `number` (`!take N`)."""

    room_id: str
    event_id: str
    reacts_to: str | None = None
    step: int = 0
    number: int | None = None


@dataclass(frozen=True)
class ContinueReply:
    """The newest reply goes on (⏩ on `reacts_to`, or `!continue`)."""

    room_id: str
    event_id: str
    reacts_to: str | None = None


@dataclass(frozen=True)
class Rewind:
    """Take back the story's last `steps` steps (`!rewind [n]`)."""

    room_id: str
    event_id: str
    steps: int = 1


StoryControl = Redo | SwitchTake | ContinueReply | Rewind
Membership = PlayerJoined | PlayerLeft | TurnAway
Action = (Ignore | AwaitKey | BindRoom | TellStranger | Tell | TakeLine | RunCommand | Stop | EditLine | TakeBack | StoryControl
          | Membership)


def strip_reply_fallback(body: str) -> str:
    """Drop the quoted `> ...` lines a client puts before the typed text of a reply."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    return "\n".join(lines[index:]).lstrip("\n")


def redacted_event_id(event: Any) -> str | None:
    """The event a redaction removes: `redacts` at the top level (room versions before 11, and
    servers that copy it there for older clients) or in its content (from version 11 on, where
    nio, whose schema asks for the top-level key, hands over an unparsed event instead)."""
    if isinstance(event, RedactionEvent):
        return event.redacts
    source = getattr(event, "source", None)
    if isinstance(source, dict) and source.get("type") == "m.room.redaction":
        redacts = source.get("redacts") or (source.get("content") or {}).get("redacts")
        return redacts if isinstance(redacts, str) else None
    return None


def is_story_line(event: Any) -> bool:
    """A plain in-story line (not a command, not an edit): safe to dispatch twice."""
    if not isinstance(event, RoomMessageText):
        return False
    relates_to = event.source.get("content", {}).get("m.relates_to") or {}
    return relates_to.get("rel_type") != "m.replace" and not event.body.strip().startswith("!")


def _nobody(_user_id: str) -> bool:
    return False


def route(
    room_id: str, event: Any, room: RoomMeta | None, bot_user_id: str, *,
    players: frozenset[str] = frozenset(), allowed: Callable[[str], bool] = _nobody,
) -> Action:
    """The one action `event` in `room_id` calls for, given the room's record `room`, who plays in
    it besides its owner (`players`) and who may use the bot (`allowed`); see the module docstring."""
    if isinstance(event, RoomMemberEvent):
        return _route_membership(event, room, bot_user_id, allowed)
    sender = getattr(event, "sender", None)
    if sender == bot_user_id:
        return Ignore("the bot's own event")
    if isinstance(event, MegolmEvent):
        return AwaitKey(room_id, event)
    if isinstance(event, RoomMessageText) and room is None and isinstance(sender, str):
        return BindRoom(room_id, sender)
    if room is None:
        return Ignore("a room the bot has not bound")
    plays = sender == room.matrix_user_id or (room.room_type in STORY_ROOMS and sender in players)
    if isinstance(event, ReactionEvent):
        return _route_reaction(event, room) if plays else Ignore("a reaction by someone who does not play here")
    redacted = redacted_event_id(event)
    if redacted is not None:
        if not plays or room.room_type not in STORY_ROOMS or room.chat_id is None:
            return Ignore("a deletion outside a player's story")
        return TakeBack(room.room_id, redacted, event.event_id, player=sender)
    if isinstance(event, (RoomMessageMedia, RoomEncryptedMedia)):
        if not plays:
            return Ignore("an upload by someone who does not play here")
        text = UPLOAD_IN_LOBBY if room.room_type in LOBBY_ROOMS else UPLOAD_IN_STORY
        return Tell(room.room_id, event.event_id, "upload", text)
    if not isinstance(event, RoomMessageText):
        return Ignore("not a message")
    if not plays:
        return TellStranger(room.room_id, room.matrix_user_id, event.sender, event.event_id)
    relates_to = event.source.get("content", {}).get("m.relates_to") or {}
    if relates_to.get("rel_type") == "m.replace":
        return _route_edit(event, room, relates_to)
    reply_to = (relates_to.get("m.in_reply_to") or {}).get("event_id")
    text = (strip_reply_fallback(event.body) if reply_to else event.body).strip()
    if not text:
        return Ignore("an empty line")
    if text.startswith("!"):
        at_once = text.split(" ", 1)[0].lower() == "!stop"
        mentioned = (event.source.get("content", {}).get("m.mentions") or {}).get("user_ids")
        mentions = tuple(u for u in mentioned if isinstance(u, str)) if isinstance(mentioned, list) else ()
        return RunCommand(room.room_id, text, event.event_id, event.sender, reply_to, at_once=at_once, mentions=mentions)
    if room.room_type not in STORY_ROOMS or room.chat_id is None:
        return Tell(room.room_id, event.event_id, "not-a-story", NOT_A_STORY_ROOM)
    return TakeLine(room.room_id, room.chat_id, text, event.event_id, reply_to, player=event.sender)


def _route_membership(event: RoomMemberEvent, room: RoomMeta | None, bot_user_id: str, allowed: Callable[[str], bool]) -> Action:
    """Who plays in a story room follows its membership: an allowed user who joins plays, a player
    who leaves (or is removed) no longer does, a user who may not use the bot is turned away
    (invited or joined). The owner plays in their story whatever their membership; elsewhere
    membership changes nothing."""
    subject = event.state_key
    if room is None or room.room_type not in STORY_ROOMS or room.chat_id is None:
        return Ignore("membership outside a story room")
    if subject in (bot_user_id, room.matrix_user_id):
        return Ignore("the bot's or the owner's membership")
    was, now = event.prev_membership, event.membership
    if now in ("invite", "join") and not allowed(subject):
        return TurnAway(room.room_id, subject, event.event_id, joined=now == "join")
    if now == "join" and was != "join":
        name = (event.content or {}).get("displayname")
        return PlayerJoined(room.room_id, room.chat_id, subject, name if isinstance(name, str) else "", event.event_id)
    if now in ("leave", "ban") and was == "join":
        removed_by = event.sender if event.sender != subject else None
        return PlayerLeft(room.room_id, room.chat_id, subject, event.event_id, removed_by)
    return Ignore("a membership change that changes no player")


def _route_edit(event: RoomMessageText, room: RoomMeta, relates_to: dict[str, Any]) -> Action:
    """A player's edit of their line in a story room re-runs the turn; elsewhere edits change nothing."""
    new = event.source.get("content", {}).get("m.new_content") or {}
    original = relates_to.get("event_id")
    body = new.get("body")
    text = body.strip() if isinstance(body, str) else ""
    if room.room_type not in STORY_ROOMS or room.chat_id is None or not isinstance(original, str) or not text:
        return Ignore("an edit outside a story, or of nothing")
    if text.startswith("!"):
        return Tell(room.room_id, event.event_id, "edit", EDIT_INTO_COMMAND)
    return EditLine(room.room_id, room.chat_id, original, text, event.event_id, player=event.sender)


REACTIONS = (STOP, REDO, EARLIER_TAKE, LATER_TAKE, GO_ON)


def _route_reaction(event: ReactionEvent, room: RoomMeta) -> Action:
    """🔄 redoes the newest reply, ◀ ▶ show another take of it, ⏩ makes it go on, ⏹ stops the one
    being written; other reactions are not actions."""
    key = event.key.replace("\ufe0f", "")
    if key not in REACTIONS:
        return Ignore("a reaction that is not an action")
    if room.room_type not in STORY_ROOMS or room.chat_id is None:
        return Tell(room.room_id, event.event_id, "reaction", REACTIONS_IN_STORY_ROOMS)
    if key == STOP:
        return Stop(room.room_id, event.event_id)
    if key in (EARLIER_TAKE, LATER_TAKE):
        return SwitchTake(room.room_id, event.event_id, event.reacts_to, step=-1 if key == EARLIER_TAKE else 1)
    if key == GO_ON:
        return ContinueReply(room.room_id, event.event_id, event.reacts_to)
    return Redo(room.room_id, event.event_id, reacts_to=event.reacts_to)
