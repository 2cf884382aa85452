"""The commands of a story of several players: `!invite` (a friend, or a character), `!remove`,
`!dismiss`, `!rounds`, and, in the Lobby, `!share`: what each decides, who may use it, and what it
says when it cannot. Real engine (a fake model) and store; what the room then sends is shown end to
end in test_players_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nio import MatrixRoom

from adapter.matrix.handlers.commands import BringIn, SetRounds
from adapter.matrix.handlers.registry import handle_command
from adapter.matrix.outgoing import Invite, Kick, SendMessage
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore, add_room_player
from core.engine import MAX_CHARACTERS, Engine
from core.llm import FakeLLM
from tests.adapter.matrix.stand_ins import BOT, Ctx
from tests.core.pipeline.conftest import GUEST, HOST, collect

ALICE, BOB, MALLORY = "@alice:localhost", "@bob:localhost", "@mallory:elsewhere"
CARD = json.dumps({"spec": "chara_card_v2", "spec_version": "2.0", "data": {
    "name": "Nyx Aldergrove", "description": "A cartographer.", "personality": "precise", "scenario": "a map room",
    "first_mes": "You're late."}})


@pytest.fixture
async def ctx(tmp_path: Path):
    engine = await Engine.open(tmp_path / "engine.sqlite3", FakeLLM({"narrate": "*She looks up.* Oh, company."}))
    store = await StateStore.open(tmp_path / "adapter.sqlite3")
    made = Ctx(store, engine)
    made.config.matrix.allowed_users = ["@*:localhost"]
    yield made
    await engine.close()
    await store.close()


async def story_of_alice(ctx: Ctx) -> RoomMeta:
    chat = await ctx.engine.create_chat(owner=ALICE, host=HOST)
    room = MatrixRoom("!story", BOT)
    room.add_member(ALICE, "Alice", None)
    ctx.client.rooms["!story"] = room
    return RoomMeta("!story", RoomType.STORY, ALICE, "!space", chat.chat_id, "mx-1")


async def run(ctx: Ctx, meta: RoomMeta, text: str, sender: str = ALICE, mentions: tuple[str, ...] = ()) -> list:
    return await handle_command(ctx, meta, text, f"${text}", sender, None, mentions)  # type: ignore[arg-type]


def said(results: list) -> str:
    return "\n".join(r.content["body"] for r in results if isinstance(r, SendMessage))


async def test_the_owner_invites_an_allowed_friend_by_id_or_by_a_name_picked_from_the_list(ctx: Ctx) -> None:
    story = await story_of_alice(ctx)
    invited = await run(ctx, story, f"!invite {BOB}")
    assert invited[0] == Invite("!story", BOB) and "They play once they join" in said(invited)
    picked = await run(ctx, story, "!invite Bob Marsh", mentions=(BOB,))  # an Element pill: its name in the text, its id in m.mentions
    assert picked[0] == Invite("!story", BOB)
    assert "is not a Matrix user id" in said(await run(ctx, story, "!invite @bob"))
    assert "not on this bot's list of allowed users" in said(await run(ctx, story, f"!invite {MALLORY}"))
    assert "You play in your story already" in said(await run(ctx, story, f"!invite {ALICE}"))
    ctx.client.rooms["!story"].add_member(BOB, "Bob", None, invited=True)
    assert "is invited already" in said(await run(ctx, story, f"!invite {BOB}"))
    await add_room_player(ctx.store, "!story", BOB)
    assert "plays in this story already" in said(await run(ctx, story, f"!invite {BOB}"))
    assert "Only @alice:localhost, whose story this is, can invite" in said(await run(ctx, story, "!invite @carol:localhost", BOB))


async def test_the_owner_removes_a_player_or_withdraws_an_invite(ctx: Ctx) -> None:
    story = await story_of_alice(ctx)
    assert "does not play in this story" in said(await run(ctx, story, f"!remove {BOB}"))
    await add_room_player(ctx.store, "!story", BOB)
    removed = await run(ctx, story, f"!remove {BOB}")
    assert isinstance(removed[0], Kick) and removed[0].user_id == BOB and "keep what they witnessed" in said(removed)
    assert "You own this story, so you stay" in said(await run(ctx, story, f"!remove {ALICE}"))
    assert "can invite and remove players" in said(await run(ctx, story, f"!remove {ALICE}", BOB))
    ctx.client.rooms["!story"].add_member("@carol:localhost", "Carol", None, invited=True)
    withdrawn = await run(ctx, story, "!remove @carol:localhost")
    assert isinstance(withdrawn[0], Kick) and "invite is withdrawn" in said(withdrawn)


async def test_rounds_are_the_owners_to_turn_on_and_off(ctx: Ctx) -> None:
    story = await story_of_alice(ctx)
    assert "Rounds are off" in said(await run(ctx, story, "!rounds"))
    assert await run(ctx, story, "!rounds on") == [SetRounds(True)]
    assert "Rounds are on already" in said(await run(ctx, RoomMeta(**{**story.__dict__, "rounds": True}), "!rounds ON"))
    assert "Usage: `!rounds [on or off]`" in said(await run(ctx, story, "!rounds maybe"))
    assert "Only @alice:localhost, whose story this is, can use `!rounds`" in said(await run(ctx, story, "!rounds on", BOB))


async def test_characters_come_and_go_up_to_the_documented_number(ctx: Ctx) -> None:
    story = await story_of_alice(ctx)
    assert await run(ctx, story, "!invite odile", BOB) == [BringIn(GUEST, "Captain Odile Marchetti", BOB)]  # any player may
    assert "is in this story already" in said(await run(ctx, story, "!invite wren"))
    assert "No character called `zed`" in said(await run(ctx, story, "!invite zed"))
    await collect(ctx.engine.invite_character(story.chat_id, GUEST))
    assert "leaves the scene" in said(await run(ctx, story, "!dismiss captain"))
    assert [c.character_id for c in await ctx.engine.cast(story.chat_id)] == [HOST]
    assert "is this story's host and stays in it" in said(await run(ctx, story, "!dismiss wren"))
    assert "No character called `odile`" in said(await run(ctx, story, "!dismiss odile"))  # not present now
    others = [c.character_id for c in await ctx.engine.list_characters() if c.character_id != HOST]
    for character in others[: MAX_CHARACTERS - 1]:
        await collect(ctx.engine.invite_character(story.chat_id, character))
    one_more = await ctx.engine.import_character(CARD, owner=ALICE)
    full = said(await run(ctx, story, f"!invite {one_more.character_id}"))
    assert f"A story holds {MAX_CHARACTERS} characters at most" in full


async def test_a_card_one_player_imports_is_theirs_until_they_share_it(ctx: Ctx) -> None:
    lobby_of_bob = RoomMeta("!lobby-b", RoomType.LOBBY, BOB, "!space-b")
    lobby_of_alice = RoomMeta("!lobby-a", RoomType.LOBBY, ALICE, "!space-a")
    nyx = await ctx.engine.import_character(CARD, owner=ALICE)
    mine = said(await run(ctx, lobby_of_alice, "!characters"))
    assert "**Nyx Aldergrove**" in mine and "_yours_" in mine
    assert "Nyx" not in said(await run(ctx, lobby_of_bob, "!characters", BOB))
    assert "No character called `nyx`" in said(await run(ctx, lobby_of_bob, "!new nyx", BOB))
    assert "You have imported no character to share" in said(await run(ctx, lobby_of_bob, "!share nyx", BOB))
    assert "is shared: everyone" in said(await run(ctx, lobby_of_alice, "!share nyx"))
    assert "**Nyx Aldergrove**" in said(await run(ctx, lobby_of_bob, "!characters", BOB))
    assert "is shared already" in said(await run(ctx, lobby_of_alice, f"!share {nyx.character_id}"))
