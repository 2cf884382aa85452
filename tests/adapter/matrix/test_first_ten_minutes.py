"""The first ten minutes of a new player, as a transcript: every word the bot says, reviewed when it changes.

A scripted session against a real Synapse and the real bot with the offline demo model (the one
`make dev` plays): onboarding, a persona, ten lines, every command once, a skip, a jump, a
regenerate and the take before it shown again, an edited line, a deleted one, an out-of-character
line, and a second story with two characters. What the bot says is written as a readable
transcript and compared with the one checked in (`transcripts/first_ten_minutes.md`); ids that
differ from run to run are replaced by stable placeholders. After an intended change, rewrite it
with `RPBOT_UPDATE_TRANSCRIPT=1` and review the diff like any other change to the product.
"""

from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.support.matrix_user import MatrixUser

DATA = Path(__file__).parents[2] / "data"

pytestmark = pytest.mark.synapse

TRANSCRIPT = Path(__file__).parent / "transcripts" / "first_ten_minutes.md"
QUIET_S = 1.5  # a reply is complete when nothing the bot shows has changed for this long

LINES = [
    "Good morning. Is there more of that tea?",
    "Where is the old boat that brought me here?",
    "I found a brass key in the sand below the light.",
    "Why do you keep the lamp lit when no ships come?",
    "Tell me about the storm that wrecked us.",
    "Who else lives on this rock?",
    "Can I help you mend the nets?",
    "What happened to the rest of the crew?",
    "I think someone is watching the lighthouse.",
    "Then we keep watch together tonight.",
]


class Session:
    """Says things in rooms as the player and records what the bot shows in answer."""

    def __init__(self, bot: RunningBot, player: MatrixUser) -> None:
        self.bot, self.player = bot, player
        self.rooms: dict[str, str] = {}  # room id -> the name the transcript uses
        self.out: list[str] = []
        self.last_line: dict[str, str] = {}  # room id -> the player's latest line there

    def shown(self) -> dict[tuple[str, str], str]:
        self.player.sync_once(timeout_ms=200)
        return {(room, event): text for room in self.rooms for event, text in self.player.final_texts(room, self.bot.user_id).items()}

    def settle(self, before: dict[tuple[str, str], str], timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        current = self.shown()
        while current == before and time.monotonic() < deadline:
            time.sleep(0.2)
            current = self.shown()
        assert current != before, "the bot showed nothing in answer"
        stable_since = time.monotonic()
        while time.monotonic() - stable_since < QUIET_S:
            time.sleep(0.3)
            latest = self.shown()
            if latest != current:
                current, stable_since = latest, time.monotonic()
        for key, text in before.items():
            if key not in current:
                self.out.append(f"**bot** in {self.rooms[key[0]]} removes its message:\n\n{quote_block(text)}\n")
        for key, text in current.items():
            if key not in before:
                self.out.append(f"{self.sender(*key)} in {self.rooms[key[0]]}:\n\n{quote_block(text)}\n")
            elif before[key] != text:
                self.out.append(f"{self.sender(*key)} in {self.rooms[key[0]]} (the message above, changed in place):\n\n{quote_block(text)}\n")

    def sender(self, room: str, event_id: str) -> str:
        """Who the bot's message is from, as a client shows it (the bot's room name when it was sent), and if it is a notice."""
        event = next(e for e in self.player.timeline[room] if e["event_id"] == event_id)
        notice = " (a notice)" if event["content"].get("msgtype") == "m.notice" else ""
        return f"**{self.player.sender_names.get(event_id, 'bot')}**{notice}"

    def say(self, room: str, text: str) -> None:
        before = self.shown()
        self.out.append(f"### {self.rooms[room]}: `{text}`\n")
        event_id = self.player.send_text(room, text)
        if not text.startswith("!"):
            self.last_line[room] = event_id
        self.settle(before)

    def edit_last_line(self, room: str, text: str) -> None:
        before = self.shown()
        self.out.append(f"### {self.rooms[room]}: edits that line to `{text}`\n")
        self.player.edit(room, self.last_line[room], text)
        self.settle(before)

    def delete_last_line(self, room: str) -> None:
        before = self.shown()
        self.out.append(f"### {self.rooms[room]}: deletes that line\n")
        self.player.redact(room, self.last_line.pop(room))
        self.settle(before)

    def upload_and_reply(self, room: str, path: Path, command: str) -> None:
        """Upload a file to `room`, then answer it with `command` as a Matrix reply (what Element's
        Reply does), the way a player imports a card or a lorebook."""
        before = self.shown()
        self.out.append(f"### {self.rooms[room]}: uploads `{path.name}`, then replies to it with `{command}`\n")
        url = self.player.upload(path.read_bytes(), path.name, "application/json")
        upload = self.player.send_content(room, {"msgtype": "m.file", "body": path.name, "url": url})
        self.settle(before)
        before = self.shown()
        self.player.send_content(room, {
            "msgtype": "m.text", "body": f"> <{self.player.user_id}> sent a file.\n\n{command}",
            "m.relates_to": {"m.in_reply_to": {"event_id": upload}},
        })
        self.settle(before)

    def react(self, room: str, key: str) -> None:
        before = self.shown()
        latest_reply = list(self.player.final_texts(room, self.bot.user_id))[-1]
        self.out.append(f"### {self.rooms[room]}: reacts {key} to the latest reply\n")
        self.player.react(room, latest_reply, key)
        self.settle(before)


def quote_block(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def normalized(text: str, session: Session) -> str:
    names = {room: f"<{name}>" for room, name in session.rooms.items()}
    for room, placeholder in names.items():
        text = text.replace(quote(room, safe="!:"), placeholder).replace(room, placeholder)
    text = text.replace(session.bot.user_id, "@rpbot:localhost").replace(session.player.user_id, "@player:localhost")
    text = text.replace(session.bot.user_id[1:].split(":")[0], "rpbot")  # the bot account's own name, its localpart
    return re.sub(r"mxc://[^\s)\"']+", "mxc://<media>", text)


@pytest.mark.timeout(300)
def test_the_first_ten_minutes_read_as_the_checked_in_transcript(start_bot) -> None:
    bot = start_bot()  # the offline demo model
    player = bot.player()
    player._call("PUT", f"/_matrix/client/v3/profile/{quote(player.user_id)}/displayname", json={"displayname": "Tobin Reyes"})
    session = Session(bot, player)
    space, lobby, story = onboard(bot, player)
    session.rooms.update({player.invite_room: "first room", lobby: "Lobby", story: "first story", space: "Space"})
    session.out.append("### first room: the player invites the bot\n")
    session.settle({})

    for command in ("!help", "!characters", "!persona", "!persona Tobin Reyes: a young deckhand, shipwrecked two days ago"):
        session.say(lobby, command)
    session.upload_and_reply(lobby, DATA / "ilse_varga_v3.json", "!import")
    for line in LINES[:5]:
        session.say(story, line)
    for command in ("!help", "!status", "!memory the storm", "!memory you tea", "!threads", "!events", "!plan the supply boat at 6pm",
                    "!context", "!stop", "!skip 2h", "!regen"):
        session.say(story, command)
    for line in LINES[5:8]:
        session.say(story, line)
    session.react(story, "🔄")
    session.react(story, "◀")
    session.say(story, "((Is Wren hiding something about the lamp?))")
    session.say(story, "!jump tomorrow 9am")
    session.say(story, LINES[8])
    session.edit_last_line(story, "I think someone is watching us from the rocks.")
    session.say(story, LINES[9])
    session.say(story, "Let's go down to the boat right now.")
    session.delete_last_line(story)
    session.upload_and_reply(story, DATA / "world_info_gullrock.json", "!lore import")
    session.say(story, "!lore")
    session.say(story, "!scene close")
    session.say(story, "!meanwhile wren odile a quarrel about the lamp")
    session.say(story, "!stauts")
    session.say(story, "!new odile")

    known = {room["room_id"] for room in player.hierarchy(space)}
    session.say(lobby, "!new wren with odile")
    second = next(room["room_id"] for room in player.hierarchy(space) if room["room_id"] not in known)
    player.join(second)
    session.rooms[second] = "second story"
    session.settle({key: text for key, text in session.shown().items() if key[0] != second})
    session.say(second, "Captain, Wren: which of you is in charge here?")
    session.say(second, "!context full")

    text = ("# The first ten minutes\n\nWhat a new player sees, step by step (generated by this test; see its docstring).\n"
            "Each message is headed by its sender as a client shows it: the name the bot had in that room when it was sent.\n\n")
    text += normalized("\n".join(session.out), session)
    if os.environ.get("RPBOT_UPDATE_TRANSCRIPT"):
        TRANSCRIPT.parent.mkdir(exist_ok=True)
        TRANSCRIPT.write_text(text)
    expected = TRANSCRIPT.read_text() if TRANSCRIPT.exists() else ""
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "checked in", "this run", n=2))
    assert not diff, f"the transcript changed (review, then RPBOT_UPDATE_TRANSCRIPT=1 to accept):\n{diff[:6000]}"
