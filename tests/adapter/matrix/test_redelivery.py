"""A turn redelivered after a crash finishes the message already shown, even once the homeserver
has forgotten the transaction id (about 30 minutes): the reply's event id is kept in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapter.matrix.outgoing import SendMessage
from adapter.matrix.room_types import RoomType
from adapter.matrix.rooms import StoryRoom
from adapter.matrix.speaking import RoomFaces
from adapter.matrix.store import RoomMeta, StateStore, message_showing_turn, reply_message_for
from core.engine import TurnUpdate
from tests.adapter.matrix.stand_ins import StandInClient, stand_in_config


class ForgetfulSender:
    """Records sends; every message sent makes a new event (no transaction-id memory at all)."""

    def __init__(self) -> None:
        self.sent = []

    async def send(self, event):
        self.sent.append(event)
        if not isinstance(event, SendMessage):
            return None  # a typing notice, the speaker's face
        return f"$event{len(self.messages())}"

    def messages(self) -> list[SendMessage]:
        return [e for e in self.sent if isinstance(e, SendMessage)]

    async def upload(self, data: bytes, content_type: str, filename: str) -> str:
        return f"mxc://localhost/{filename}"


class ScriptedEngine:
    def __init__(self, updates: list[TurnUpdate], hang_after: bool = False) -> None:
        self.updates = updates
        self.hang_after = hang_after
        self.answered: list[str] = []

    async def line_answered(self, chat_id: str, source_id: str) -> None:
        self.answered.append(source_id)

    async def post_turn(self, chat_id: str, text: str, source_id: str, *, player: str | None = None, replying_to: str | None = None):
        for update in self.updates:
            yield update
            await asyncio.sleep(0)
        if self.hang_after:
            await asyncio.Event().wait()


class Ctx:
    def __init__(self, store: StateStore, engine: ScriptedEngine) -> None:
        self.store, self.engine, self.sender = store, engine, ForgetfulSender()
        self.config = stand_in_config()
        self.client = StandInClient()
        self.faces = RoomFaces(self.client, self.sender)


async def test_a_redelivered_turn_edits_the_message_shown_before_the_crash(tmp_path: Path) -> None:
    store = await StateStore.open(tmp_path / "adapter.sqlite3")
    meta = RoomMeta("!story", RoomType.STORY, "@alice:localhost", "!space", "chat-1", "mx-1")
    partial = TurnUpdate("Mira", "mira", "The first half", done=False)
    crashed = Ctx(store, ScriptedEngine([partial], hang_after=True))
    task = asyncio.create_task(StoryRoom(crashed, meta).answer("hello", "$line"))  # type: ignore[arg-type]
    while not crashed.sender.messages():
        await asyncio.sleep(0.01)
    task.cancel()  # the crash
    await asyncio.gather(task, return_exceptions=True)
    assert await reply_message_for(store, "$line", "mira") == "$event1"
    assert crashed.engine.answered == []  # still owed: the engine offers it again after the restart

    done = TurnUpdate("Mira", "mira", "The first half, and the rest.", done=True, turn_id=7)
    restarted = Ctx(store, ScriptedEngine([done]))
    await StoryRoom(restarted, meta).answer("hello", "$line")  # type: ignore[arg-type]
    messages = restarted.sender.messages()
    assert len(messages) == 1
    assert messages[0].content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$event1"}
    assert messages[0].content["m.new_content"]["body"] == "The first half, and the rest."
    assert restarted.engine.answered == ["$line"]
    assert await message_showing_turn(store, 7) == "$event1"  # the reply a 🔄 on that message redoes
    await store.close()
