"""Routing is a pure decision: an event, the room's record and the bot's id in, one action out.

Every rule is shown here with nothing but parsed nio events: no store, no engine, no sender.
"""

from __future__ import annotations

import itertools
from typing import Any

from nio import Event, MegolmEvent

from adapter.matrix.room_types import RoomType
from adapter.matrix.routing import (
    EDIT_INTO_COMMAND,
    NOT_A_STORY_ROOM,
    REACTIONS_IN_STORY_ROOMS,
    UPLOAD_IN_LOBBY,
    UPLOAD_IN_STORY,
    AwaitKey,
    BindRoom,
    ContinueReply,
    EditLine,
    Ignore,
    PlayerJoined,
    PlayerLeft,
    Redo,
    RunCommand,
    Stop,
    SwitchTake,
    TakeBack,
    TakeLine,
    Tell,
    TellStranger,
    TurnAway,
    route,
)
from adapter.matrix.store import RoomMeta

BOT, ALICE, BOB, MALLORY = "@rpbot:localhost", "@alice:localhost", "@bob:localhost", "@mallory:elsewhere"
STORY = RoomMeta("!story", RoomType.STORY, ALICE, "!space", "chat-1", "mx-1")
LOBBY = RoomMeta("!lobby", RoomType.LOBBY, ALICE, "!space")
_ids = itertools.count(1)


def parsed(sender: str, content: dict[str, Any], kind: str = "m.room.message") -> Any:
    return Event.parse_event({"type": kind, "sender": sender, "event_id": f"$e{next(_ids)}", "origin_server_ts": 1,
                              "content": content})


def text(body: str, sender: str = ALICE, **content: Any) -> Any:
    return parsed(sender, {"msgtype": "m.text", "body": body, **content})


def reaction(key: str, sender: str = ALICE) -> Any:
    return parsed(sender, {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$reply", "key": key}}, "m.reaction")


def test_a_line_in_a_story_room_is_taken_for_the_story() -> None:
    event = text("  Hello, Wren.  ")
    assert route("!story", event, STORY, BOT) == TakeLine("!story", "chat-1", "Hello, Wren.", event.event_id, player=ALICE)


def test_the_bots_own_events_and_empty_lines_are_ignored() -> None:
    assert isinstance(route("!story", text("my own reply", sender=BOT), STORY, BOT), Ignore)
    assert isinstance(route("!story", text("   "), STORY, BOT), Ignore)


def edit(body: str, sender: str = ALICE) -> Any:
    return text(f"* {body}", sender=sender, **{"m.new_content": {"msgtype": "m.text", "body": body},
                                              "m.relates_to": {"rel_type": "m.replace", "event_id": "$old"}})


def test_an_edit_of_a_line_in_a_story_asks_to_run_the_turn_again() -> None:
    fixed = edit("  Hello, Wren!  ")
    assert route("!story", fixed, STORY, BOT) == EditLine("!story", "chat-1", "$old", "Hello, Wren!", fixed.event_id, player=ALICE)
    into_command = edit("!skip 2h")
    assert route("!story", into_command, STORY, BOT) == Tell("!story", into_command.event_id, "edit", EDIT_INTO_COMMAND)
    assert isinstance(route("!lobby", edit("!new wren"), LOBBY, BOT), Ignore)  # an edit elsewhere changes nothing
    assert isinstance(route("!story", edit("mine now", sender=BOB), STORY, BOT), TellStranger)
    assert isinstance(route("!story", edit("   "), STORY, BOT), Ignore)


def redaction(redacts: str, sender: str = ALICE, *, in_content: bool = False) -> Any:
    event = {"type": "m.room.redaction", "sender": sender, "event_id": f"$e{next(_ids)}", "origin_server_ts": 1,
             "content": {"redacts": redacts} if in_content else {}}
    if not in_content:
        event["redacts"] = redacts
    return Event.parse_event(event)


def test_a_deletion_in_a_story_asks_to_take_it_back_whichever_room_version_wrote_it() -> None:
    for in_content in (False, True):  # `redacts` at the top level before room version 11, in the content from 11 on
        deleted = redaction("$line", in_content=in_content)
        assert route("!story", deleted, STORY, BOT) == TakeBack("!story", "$line", deleted.event_id, player=ALICE)
    assert isinstance(route("!story", redaction("$line", sender=BOB), STORY, BOT), Ignore)
    assert isinstance(route("!lobby", redaction("$line"), LOBBY, BOT), Ignore)
    assert isinstance(route("!story", redaction("$reply", sender=BOT), STORY, BOT), Ignore)


def test_a_reply_drops_the_quoted_fallback() -> None:
    event = text("> <@rpbot:localhost> Wren: the lamp\n\nAnd the storm?", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$r"}}})
    action = route("!story", event, STORY, BOT)
    assert isinstance(action, TakeLine) and action.text == "And the storm?"


def test_commands_run_in_the_rooms_turn_but_stop_runs_at_once() -> None:
    skip = route("!story", text("!skip 2h"), STORY, BOT)
    assert isinstance(skip, RunCommand) and skip.text == "!skip 2h" and not skip.at_once
    stop = route("!story", text("!STOP"), STORY, BOT)
    assert isinstance(stop, RunCommand) and stop.at_once
    imported = route("!lobby", text("!import", **{"m.relates_to": {"m.in_reply_to": {"event_id": "$card"}}}), LOBBY, BOT)
    assert isinstance(imported, RunCommand) and imported.reply_to == "$card"


def test_lines_outside_a_story_and_uploads_are_answered_with_what_to_do() -> None:
    event = text("hello there")
    assert route("!lobby", event, LOBBY, BOT) == Tell("!lobby", event.event_id, "not-a-story", NOT_A_STORY_ROOM)
    upload = parsed(ALICE, {"msgtype": "m.file", "body": "wren.png", "url": "mxc://localhost/a"})
    assert route("!lobby", upload, LOBBY, BOT) == Tell("!lobby", upload.event_id, "upload", UPLOAD_IN_LOBBY)
    assert route("!story", upload, STORY, BOT) == Tell("!story", upload.event_id, "upload", UPLOAD_IN_STORY)


def test_strangers_are_told_whose_story_it_is_and_their_uploads_ignored() -> None:
    event = text("let me in", sender=BOB)
    assert route("!story", event, STORY, BOT) == TellStranger("!story", ALICE, BOB, event.event_id)
    upload = parsed(BOB, {"msgtype": "m.file", "body": "x.png", "url": "mxc://localhost/a"})
    assert isinstance(route("!story", upload, STORY, BOT), Ignore)


def test_reactions_redo_or_stop_in_a_story_and_say_why_not_elsewhere() -> None:
    redo = reaction("🔄")
    assert route("!story", redo, STORY, BOT) == Redo("!story", redo.event_id, reacts_to="$reply")
    stop = reaction("⏹\ufe0f")
    assert route("!story", stop, STORY, BOT) == Stop("!story", stop.event_id)
    elsewhere = reaction("🔄")
    assert route("!lobby", elsewhere, LOBBY, BOT) == Tell("!lobby", elsewhere.event_id, "reaction", REACTIONS_IN_STORY_ROOMS)
    assert isinstance(route("!story", reaction("👍"), STORY, BOT), Ignore)
    assert isinstance(route("!story", reaction("🔄", sender=BOB), STORY, BOT), Ignore)


def test_reactions_flip_between_takes_and_make_a_reply_go_on() -> None:
    for variation in ("", "\ufe0f"):  # Element's picker adds the emoji variation selector
        earlier, later, go_on = reaction("◀" + variation), reaction("▶" + variation), reaction("⏩" + variation)
        assert route("!story", earlier, STORY, BOT) == SwitchTake("!story", earlier.event_id, "$reply", step=-1)
        assert route("!story", later, STORY, BOT) == SwitchTake("!story", later.event_id, "$reply", step=1)
        assert route("!story", go_on, STORY, BOT) == ContinueReply("!story", go_on.event_id, "$reply")
    elsewhere = reaction("▶")
    assert route("!lobby", elsewhere, LOBBY, BOT) == Tell("!lobby", elsewhere.event_id, "reaction", REACTIONS_IN_STORY_ROOMS)


def test_an_unknown_room_is_bound_only_for_a_line_and_undecryptable_events_wait_for_their_key() -> None:
    assert route("!new", text("hello?"), None, BOT) == BindRoom("!new", ALICE)
    assert isinstance(route("!new", reaction("🔄"), None, BOT), Ignore)
    encrypted = MegolmEvent.from_dict({
        "type": "m.room.encrypted", "sender": ALICE, "event_id": "$enc", "origin_server_ts": 1,
        "content": {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "x", "sender_key": "k", "session_id": "s",
                    "device_id": "D"},
    })
    assert route("!story", encrypted, STORY, BOT) == AwaitKey("!story", encrypted)


def test_routing_is_a_plain_function_that_can_reach_no_io() -> None:
    """Not a coroutine, and it imports nothing that could read or write: only event types, RoomMeta and room types."""
    import ast
    import inspect
    from pathlib import Path

    import adapter.matrix.routing as routing

    assert not inspect.iscoroutinefunction(routing.route)
    tree = ast.parse(Path(routing.__file__).read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {name for module, name in imported if module == "adapter.matrix.store"} == {"RoomMeta"}
    pure = {"__future__", "collections.abc", "dataclasses", "typing", "nio", "adapter.matrix.store", "adapter.matrix.room_types"}
    assert {module for module, _ in imported} <= pure


def member(subject: str, membership: str, *, was: str | None = None, sender: str | None = None, name: str | None = None) -> Any:
    content: dict[str, Any] = {"membership": membership, **({"displayname": name} if name else {})}
    event: dict[str, Any] = {"type": "m.room.member", "state_key": subject, "sender": sender or subject,
                             "event_id": f"$e{next(_ids)}", "origin_server_ts": 1, "content": content}
    if was is not None:
        event["unsigned"] = {"prev_content": {"membership": was}}
    return Event.parse_event(event)


def allowed(user_id: str) -> bool:
    return user_id.endswith(":localhost")


def test_an_allowed_user_who_joins_a_story_room_plays_and_one_who_leaves_no_longer_does() -> None:
    joined = member(BOB, "join", was="invite", name="Bob Marsh")
    assert route("!story", joined, STORY, BOT, allowed=allowed) == PlayerJoined("!story", "chat-1", BOB, "Bob Marsh", joined.event_id)
    back = member(BOB, "join", was="leave")
    assert route("!story", back, STORY, BOT, allowed=allowed) == PlayerJoined("!story", "chat-1", BOB, "", back.event_id)
    left = member(BOB, "leave", was="join")
    assert route("!story", left, STORY, BOT, allowed=allowed) == PlayerLeft("!story", "chat-1", BOB, left.event_id)
    removed = member(BOB, "leave", was="join", sender=BOT)  # the bot's own event: `!remove`, still a change of players
    assert route("!story", removed, STORY, BOT, allowed=allowed) == PlayerLeft("!story", "chat-1", BOB, removed.event_id, BOT)
    banned = member(BOB, "ban", was="join", sender=ALICE)
    assert route("!story", banned, STORY, BOT, allowed=allowed) == PlayerLeft("!story", "chat-1", BOB, banned.event_id, ALICE)


def test_membership_that_changes_no_player_is_ignored() -> None:
    for event in (
        member(BOB, "join", was="join", name="Bob, renamed"),  # a profile change
        member(BOB, "invite", sender=ALICE),  # invited: a player once they join
        member(BOB, "leave", was="invite"),  # an invite declined or withdrawn
        member(ALICE, "leave", was="join"),  # the owner plays in their story whatever their membership
        member(ALICE, "join", was="invite"),
        member(BOT, "join", was="join", name="Wren Halloway"),  # the bot's face switching
    ):
        assert isinstance(route("!story", event, STORY, BOT, allowed=allowed), Ignore), event
    assert isinstance(route("!lobby", member(BOB, "join", was="invite"), LOBBY, BOT, allowed=allowed), Ignore)
    assert isinstance(route("!new", member(BOB, "join", was="invite"), None, BOT, allowed=allowed), Ignore)


def test_a_user_who_may_not_use_the_bot_is_turned_away_invited_or_joined() -> None:
    invited = member(MALLORY, "invite", sender=ALICE)
    assert route("!story", invited, STORY, BOT, allowed=allowed) == TurnAway("!story", MALLORY, invited.event_id)
    joined = member(MALLORY, "join", was="invite")
    assert route("!story", joined, STORY, BOT, allowed=allowed) == TurnAway("!story", MALLORY, joined.event_id, joined=True)
    assert isinstance(route("!story", member(MALLORY, "leave", was="invite", sender=BOT), STORY, BOT, allowed=allowed), Ignore)


def test_every_player_of_a_story_is_heard_and_nobody_else() -> None:
    line = text("Evening, all.", sender=BOB)
    assert route("!story", line, STORY, BOT, players=frozenset({BOB})) == TakeLine(
        "!story", "chat-1", "Evening, all.", line.event_id, player=BOB)
    assert route("!story", line, STORY, BOT) == TellStranger("!story", ALICE, BOB, line.event_id)  # not (or no longer) a player
    command = route("!story", text("!memory you", sender=BOB), STORY, BOT, players=frozenset({BOB}))
    assert isinstance(command, RunCommand) and command.sender == BOB
    fixed = edit("Evening, everyone.", sender=BOB)
    assert isinstance(route("!story", fixed, STORY, BOT, players=frozenset({BOB})), EditLine)  # the engine knows whose line it is
    assert isinstance(route("!story", redaction("$line", sender=BOB), STORY, BOT, players=frozenset({BOB})), TakeBack)
    assert isinstance(route("!story", reaction("🔄", sender=BOB), STORY, BOT, players=frozenset({BOB})), Redo)
    lobby_line = text("hello", sender=BOB)  # a player of one story has no say in the owner's Lobby
    assert route("!lobby", lobby_line, LOBBY, BOT, players=frozenset({BOB})) == TellStranger("!lobby", ALICE, BOB, lobby_line.event_id)
