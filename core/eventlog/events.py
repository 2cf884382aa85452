"""Event kinds and their pydantic payload models, in one registry.

Every state change is one of these events.  `EVENT_MODELS` maps the kind name
(stored in the log) to its payload model; `parse_payload` turns a dict or a
model into a validated payload or raises `UnknownEventKindError` /
`InvalidPayloadError`.  Payloads are immutable and forbid unknown fields.

Story times (`StoryTime`) are chat-clock datetimes, never wall-clock: naive,
whole seconds.  Fields left as None that name a time, a scene or similar are
filled in by the projection from the chat's state when the event is applied
(e.g. the chat clock), which is deterministic on replay because events are
re-applied in the same order.

Players are ids the adapter gives (a Matrix user id); the story's owner is its first player
and others join and leave (`player_joined`, `player_left`).  Events of stories written when a
story had one player name that player "you" (`LEGACY_PLAYER`): the projections read it as the
story's owner, so those stories replay to the tables their migration gives.

Events that change a value carry the new absolute value (edge_set,
memory_significance_set, clock_set), so a compensating event can restore the
old one; memory_retracted / memory_restored, edge_cleared, scene_reopened, scene_withdrawn,
thread_reopened, thread_withdrawn, world_event_reverted, world_event_withdrawn,
digest_returned and turn_withdrawn undo the others.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from core.errors import InvalidPayloadError, UnknownEventKindError

LEGACY_PLAYER = "you"  # the one player of stories older than several players: in their events, the story's owner
_LEGACY_CAUSE = re.compile(r"turn:(\d+);")


def _normalize_story_time(value: datetime) -> datetime:
    return value.replace(tzinfo=None, microsecond=0)


StoryTime = Annotated[datetime, AfterValidator(_normalize_story_time)]
Ident = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Significance = Annotated[int, Field(ge=1, le=3)]
Score = Annotated[int, Field(ge=-100, le=100)]
RowId = Annotated[int, Field(ge=1)]
Role = Literal["user", "assistant", "narration"]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


IdentList = Annotated[list[Ident], AfterValidator(_unique)]


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str] = ""


class ChatEvent(EventPayload):
    """An event about one chat; appending it for an unknown chat raises ChatNotFoundError."""

    chat_id: Ident


EVENT_MODELS: dict[str, type[EventPayload]] = {}


_Payload = TypeVar("_Payload", bound=EventPayload)


def event_kind(name: str) -> Callable[[type[_Payload]], type[_Payload]]:
    def register(model: type[_Payload]) -> type[_Payload]:
        if name in EVENT_MODELS:
            raise RuntimeError(f"event kind {name!r} registered twice")
        model.kind = name
        EVENT_MODELS[name] = model
        return model

    return register


def parse_payload(kind: str, payload: EventPayload | Mapping[str, Any]) -> EventPayload:
    model = EVENT_MODELS.get(kind)
    if model is None:
        raise UnknownEventKindError(kind)
    if isinstance(payload, EventPayload):
        if type(payload) is not model:
            raise InvalidPayloadError(kind, f"expected {model.__name__}, got {type(payload).__name__}")
        return payload
    if not isinstance(payload, Mapping):
        raise InvalidPayloadError(kind, f"expected a mapping, got {type(payload).__name__}")
    try:
        return model.model_validate(dict(payload))
    except ValidationError as error:
        raise InvalidPayloadError(kind, str(error)) from error


# --- characters and chats -------------------------------------------------------


@event_kind("character_registered")
class CharacterRegistered(EventPayload):
    """Adds a character, or replaces one with the same id.  `owner`: the player who imported it,
    the only one who sees and uses it until they share it (None: everyone's, like the built-in
    characters and every character imported before players owned theirs)."""

    character_id: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator_notes: str = ""
    alternate_greetings: list[str] = []
    tags: list[str] = []
    creator: str = ""
    character_version: str = ""
    spec: str = "manual"  # "builtin", "chara_card_v1", "chara_card_v2", "chara_card_v3", "manual"
    raw_card: dict[str, Any] | None = None
    owner: Ident | None = None


@event_kind("character_shared")
class CharacterShared(EventPayload):
    """The owner of `character_id` shares it: every player sees and uses it from now on."""

    character_id: Ident


@event_kind("persona_set")
class PersonaSet(EventPayload):
    """The player `owner`'s persona: the name `{{user}}` stands for, and a short description."""

    owner: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""


@event_kind("chat_created")
class ChatCreated(ChatEvent):
    owner: Ident
    host: Ident
    guest: Ident | None = None
    title: str = ""
    clock: StoryTime  # when the story begins
    scenario: str = ""  # the story's own scenario, shared by everyone present ("": the host's card's)


@event_kind("chat_title_set")
class ChatTitleSet(ChatEvent):
    title: str


@event_kind("story_note_set")
class StoryNoteSet(ChatEvent):
    """The story's standing note (its Author's Note) for the model; "" removes it."""

    text: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


@event_kind("story_persona_set")
class StoryPersonaSet(ChatEvent):
    """The persona `player` plays in this story, from the next line on."""

    player: Ident
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""


@event_kind("player_joined")
class PlayerJoined(ChatEvent):
    """`player` plays in the story from now on (again, if they had left): a witness of what follows."""

    player: Ident


@event_kind("player_left")
class PlayerLeft(ChatEvent):
    """`player` no longer plays in the story (they left, or its owner removed them); they keep
    what they witnessed.  The owner never leaves their own story."""

    player: Ident


@event_kind("chat_guest_set")
class ChatGuestSet(ChatEvent):
    """The story's guest is now `guest` (None: it has none): the one before leaves the story."""

    guest: Ident | None


@event_kind("character_invited")
class CharacterInvited(ChatEvent):
    """`character_id` comes into the story: present from now on (a witness of what follows)."""

    character_id: Ident


@event_kind("character_dismissed")
class CharacterDismissed(ChatEvent):
    """`character_id` leaves the story (never its host); it keeps what it witnessed."""

    character_id: Ident


@event_kind("clock_set")
class ClockSet(ChatEvent):
    """Sets the chat clock to an absolute story time (skips, jumps, and their undo)."""

    clock: StoryTime
    reason: str = ""


# --- scenes ----------------------------------------------------------------------


@event_kind("scene_opened")
class SceneOpened(ChatEvent):
    """Opens a scene at the chat clock. A chat has at most one open 'main' scene."""

    scene_kind: Literal["main", "meanwhile"] = "main"
    title: str = ""
    present: IdentList = []


@event_kind("scene_presence_set")
class ScenePresenceSet(ChatEvent):
    scene_id: RowId
    present: IdentList


@event_kind("scene_closed")
class SceneClosed(ChatEvent):
    scene_id: RowId
    cause_turn_id: RowId | None = None  # the player's line that asked for the close, if one did


@event_kind("scene_reopened")
class SceneReopened(ChatEvent):
    """Compensation for `scene_closed` (the line that asked for the close was taken back)."""

    scene_id: RowId


@event_kind("scene_withdrawn")
class SceneWithdrawn(ChatEvent):
    """A main scene none of whose turns is shown any more leaves the story (closed, owing nothing)."""

    scene_id: RowId


# --- turns -------------------------------------------------------------------------


@event_kind("turn_recorded")
class TurnRecorded(ChatEvent):
    """A turn of the story. `supersedes` makes it a new swipe of that (assistant) turn."""

    role: Role
    speaker: Ident  # a character id, a player id (a player's line), or "narrator"
    text: str
    source_id: Ident | None = None  # adapter idempotency key (Matrix event id); unique per chat
    scene_id: RowId | None = None  # None: the open main scene, if any (or the superseded turn's)
    story_time: StoryTime | None = None  # None: the chat clock (or the superseded turn's time)
    truncated: bool = False
    supersedes: RowId | None = None
    speaker_name: Annotated[str, StringConstraints(max_length=200)] | None = None  # a player's persona name then
    answered_with: Ident | None = None  # a line of a round: the source id of the round's last line, whose reply answers it


@event_kind("turn_truncated")
class TurnTruncated(ChatEvent):
    """A generation was stopped: keep the partial text, mark the turn truncated."""

    turn_id: RowId
    text: str


@event_kind("turn_superseded")
class TurnSuperseded(ChatEvent):
    """Makes `by_turn_id` the shown sibling of its swipe group; the others become superseded."""

    turn_id: RowId
    by_turn_id: RowId


@event_kind("turn_withdrawn")
class TurnWithdrawn(ChatEvent):
    """The turn leaves the story (taken back): shown nowhere, replaced by nothing, kept in the log."""

    turn_id: RowId


@event_kind("turn_edited")
class TurnEdited(ChatEvent):
    """The player's line now reads `text` (an edit); the words it replaces stay only in the log."""

    turn_id: RowId
    text: str


@event_kind("turn_continued")
class TurnContinued(ChatEvent):
    """The reply goes on: `text` is appended to it (a continue); `truncated` is whether it was stopped again."""

    turn_id: RowId
    text: str
    truncated: bool = False


# --- player lines: received, then answered ---------------------------------------------


@event_kind("line_received")
class LineReceived(ChatEvent):
    """A player's line taken from the adapter, owed an answer until `line_answered`."""

    source_id: Ident  # the adapter's id of the line (a Matrix event id); unique per chat
    text: str
    player: Ident | None = None  # who said it (None in older events: the story's owner)


@event_kind("line_answered")
class LineAnswered(ChatEvent):
    """The player has been shown the answer to a received line (a reply, a notice, an error)."""

    source_id: Ident


# --- memory and relationships ------------------------------------------------------


@event_kind("memory_recorded")
class MemoryRecorded(ChatEvent):
    """A memory: an exchange (`event`) or a summary written from `pov`'s point of view.  A summary
    is of a closed scene (`summary_of` "scene"; None in events older than the field), of a stretch
    of an open scene ("part"), or the story so far ("story", rolled up from older scene summaries);
    `covers_from_turn` / `covers_to_turn` are the turns it was made from (a regenerate or rewind of
    any of them retracts it)."""

    text: Annotated[str, StringConstraints(min_length=1)]
    witnesses: Annotated[IdentList, Field(min_length=1)]  # player and/or character ids
    significance: Significance = 2
    memory_kind: Literal["event", "summary"] = "event"
    pov: Ident | None = None  # whose point of view a summary is written from
    scene_id: RowId | None = None  # None: the open main scene, if any
    story_time: StoryTime | None = None  # None: the chat clock
    source_turn_id: RowId | None = None
    summary_of: Literal["scene", "part", "story"] | None = None
    covers_from_turn: RowId | None = None
    covers_to_turn: RowId | None = None

    @model_validator(mode="after")
    def _a_summary_says_what_it_covers(self) -> MemoryRecorded:
        if self.summary_of is not None and self.memory_kind != "summary":
            raise ValueError("only a summary covers a scene, a part of one or the story so far")
        if (self.covers_from_turn is None) != (self.covers_to_turn is None):
            raise ValueError("a summary covers a range of turns: give both ends or neither")
        if self.covers_from_turn is not None and self.covers_to_turn is not None and self.covers_from_turn > self.covers_to_turn:
            raise ValueError("a summary's first covered turn comes after its last")
        return self


@event_kind("memory_retracted")
class MemoryRetracted(ChatEvent):
    memory_id: RowId
    reason: str = ""


@event_kind("memory_forgotten")
class MemoryForgotten(ChatEvent):
    """`witness` no longer remembers the memory (its player asked); whoever else witnessed it still does."""

    memory_id: RowId
    witness: Ident


@event_kind("memory_restored")
class MemoryRestored(ChatEvent):
    memory_id: RowId


@event_kind("memory_significance_set")
class MemorySignificanceSet(ChatEvent):
    memory_id: RowId
    significance: Significance


@event_kind("edge_set")
class EdgeSet(ChatEvent):
    """The new absolute state of the directed relationship from_id -> to_id."""

    from_id: Ident
    to_id: Ident
    affinity: Score
    trust: Score
    summary: str = ""
    reason: str = ""  # for people reading the log; code reads `cause_turn_id`
    cause_turn_id: RowId | None = None  # the reply whose exchange made the change (undone on regenerate)

    @model_validator(mode="before")
    @classmethod
    def _cause_of_an_older_event(cls, data: Any) -> Any:
        """Events written before `cause_turn_id` existed named their turn in the reason ("turn:<id>; ...")."""
        if isinstance(data, Mapping) and data.get("cause_turn_id") is None:
            legacy = _LEGACY_CAUSE.match(str(data.get("reason") or ""))
            if legacy:
                return {**data, "cause_turn_id": int(legacy.group(1))}
        return data

    @model_validator(mode="after")
    def _not_a_self_edge(self) -> EdgeSet:
        if self.from_id == self.to_id:
            raise ValueError("an edge needs two different ends")
        return self


@event_kind("edge_cleared")
class EdgeCleared(ChatEvent):
    """Compensation: the directed relationship from_id -> to_id goes back to never having been set."""

    from_id: Ident
    to_id: Ident
    reason: str = ""


# --- plot: threads, planned world events, meanwhile digests ------------------------


@event_kind("thread_opened")
class ThreadOpened(ChatEvent):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    summary: str = ""
    cause_scene_id: RowId | None = None  # detected at this scene's close (undone if its summaries are re-derived)


@event_kind("thread_updated")
class ThreadUpdated(ChatEvent):
    thread_id: RowId
    summary: str
    title: str | None = None
    cause_scene_id: RowId | None = None


@event_kind("thread_closed")
class ThreadClosed(ChatEvent):
    thread_id: RowId
    resolution: str = ""
    cause_scene_id: RowId | None = None


@event_kind("thread_withdrawn")
class ThreadWithdrawn(ChatEvent):
    """Compensation for `thread_opened`: the thread is removed (the scene close that found it is re-derived)."""

    thread_id: RowId


@event_kind("thread_reopened")
class ThreadReopened(ChatEvent):
    thread_id: RowId


@event_kind("world_event_planned")
class WorldEventPlanned(ChatEvent):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    description: str = ""
    due_at: StoryTime | None = None
    cause_turn_id: RowId | None = None  # detected from this turn (withdrawn if the turn is regenerated)


@event_kind("world_event_transitioned")
class WorldEventTransitioned(ChatEvent):
    """planned -> started | cancelled; started -> completed | cancelled."""

    world_event_id: RowId
    to: Literal["started", "completed", "cancelled"]
    cause_turn_id: RowId | None = None  # the turn whose after-work made the change (undone on regenerate)
    at: StoryTime | None = None  # None: the chat clock (a time skip starts an event at its due time)


@event_kind("world_event_reverted")
class WorldEventReverted(ChatEvent):
    """Compensation: started -> planned; completed -> started; cancelled -> planned | started."""

    world_event_id: RowId
    to: Literal["planned", "started"]


@event_kind("world_event_withdrawn")
class WorldEventWithdrawn(ChatEvent):
    """Compensation for `world_event_planned`: the still-planned event is removed (its turn was regenerated)."""

    world_event_id: RowId


@event_kind("digest_created")
class DigestCreated(ChatEvent):
    text: Annotated[str, StringConstraints(min_length=1)]
    scene_id: RowId | None = None
    participants: IdentList = []


@event_kind("digest_consumed")
class DigestConsumed(ChatEvent):
    digest_id: RowId
    turn_id: RowId | None = None


@event_kind("digest_returned")
class DigestReturned(ChatEvent):
    """Compensation for `digest_consumed`: the line it was told with was taken back; it is pending again."""

    digest_id: RowId


# --- lore: lorebooks bound to who knows each entry ------------------------------------


class LoreEntryRecord(BaseModel):
    """One lorebook entry as imported, with who knows it: "everyone", "only" the `knowers`,
    or everyone "except" them (character ids)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uid: str = ""  # the entry's id in the file it came from
    title: str = ""
    keys: list[str] = []
    secondary_keys: list[str] = []  # used only with `selective_logic` against the primary match
    selective_logic: Literal[0, 1, 2, 3] = 0  # AND ANY, NOT ALL, NOT ANY, AND ALL
    content: Annotated[str, StringConstraints(min_length=1)]
    constant: bool = False
    enabled: bool = True
    order: int = 100
    priority: int = 0
    case_sensitive: bool = False
    match_whole_words: bool = False
    use_regex: bool = False
    exclude_recursion: bool = False
    prevent_recursion: bool = False
    delay_until_recursion: bool = False
    ignore_budget: bool = False
    scan_depth: Annotated[int, Field(ge=0, le=1000)] | None = None
    known_by: Literal["everyone", "only", "except"] = "everyone"
    knowers: IdentList = []


@event_kind("lore_imported")
class LoreImported(ChatEvent):
    """A lorebook added to the chat; it replaces the chat's book of the same name, if any."""

    book: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    origin: Literal["card", "world_info"]
    character_id: Ident | None = None  # whose card the book came with
    scan_depth: Annotated[int, Field(ge=0, le=1000)] | None = None  # for entries that set none
    token_budget: Annotated[int, Field(ge=1)] | None = None
    recursive: bool = True  # whether entries' contents are scanned for further keys
    entries: list[LoreEntryRecord]
