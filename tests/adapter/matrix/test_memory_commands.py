"""`!memory` lists numbered memories; `!forget <n>` makes the character who holds the n-th one
forget it (others who witnessed it keep it).  The numbers are those of the last list shown in
the room, kept in the adapter's store by memory id, so neither new memories nor a restart (a
reopened store and engine) shift them.  Real engine and store; the Matrix side is in
test_story_commands_e2e.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapter.matrix.handlers.registry import handle_command
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import RoomMeta, StateStore
from core.engine import Engine
from core.llm import FakeLLM
from tests.core.pipeline.conftest import GUEST, HOST, collect


@dataclass
class Ctx:
    engine: Engine
    store: StateStore


async def open_both(tmp_path: Path) -> Ctx:
    fake = FakeLLM({"narrate": lambda m: "Aye, " + m[-1]["content"].split("\n")[0].lower(),
                    "addressee": {"speaker": HOST, "confidence": "high"}})
    return Ctx(await Engine.open(tmp_path / "engine.sqlite3", fake), await StateStore.open(tmp_path / "adapter.sqlite3"))


async def close_both(ctx: Ctx) -> None:
    await ctx.engine.close()
    await ctx.store.close()


async def say(ctx: Ctx, meta: RoomMeta, text: str) -> str:
    (sent,) = await handle_command(ctx, meta, text, f"${text}", meta.matrix_user_id)  # type: ignore[arg-type]
    return sent.content["body"]


async def test_memory_lists_numbered_memories_and_forget_takes_one_from_its_holder_only(tmp_path: Path) -> None:
    ctx = await open_both(tmp_path)
    chat = (await ctx.engine.create_chat(owner="@alice:localhost", host=HOST, guest=GUEST)).chat_id
    story = RoomMeta("!story", RoomType.STORY, "@alice:localhost", "!space", chat, "mx-1")
    for line in ("The key is under the third stone.", "My sister is called Odalys.", "I dislike the fog."):
        await collect(ctx.engine.post_turn(chat, line, f"${line}"))

    listed = await say(ctx, story, "!memory")
    assert "**Wren Halloway remembers:**" in listed
    assert listed.index("1. ") < listed.index("The key is under") < listed.index("2. ") < listed.index("Odalys")
    assert "`!forget <number>`" in listed

    forgot = await say(ctx, story, "!forget 2")
    assert "Wren Halloway no longer remembers" in forgot and "Odalys" in forgot
    assert "Odalys" not in await say(ctx, story, "!memory odalys")
    assert "Odalys" in await say(ctx, story, "!memory you odalys")  # the player still does
    # the guest witnessed it too, and keeps it
    assert "Odalys" in await say(ctx, story, "!memory odile odalys")

    assert "1. " in await say(ctx, story, "!memory wren key")  # a new list: one memory, number 1
    assert "no longer remembers" in await say(ctx, story, "!forget 1")
    assert "already forgotten" in await say(ctx, story, "!forget 1")
    assert "pick a number from 1 to 1" in await say(ctx, story, "!forget 2")
    await close_both(ctx)


async def test_the_numbers_are_those_of_the_last_list_even_after_new_memories_and_a_restart(tmp_path: Path) -> None:
    ctx = await open_both(tmp_path)
    chat = (await ctx.engine.create_chat(owner="@alice:localhost", host=HOST)).chat_id
    story = RoomMeta("!story", RoomType.STORY, "@alice:localhost", "!space", chat, "mx-1")
    for line in ("The boat is blue.", "The lamp needs oil.", "The gulls are loud."):
        await collect(ctx.engine.post_turn(chat, line, f"${line}"))
    listed = await say(ctx, story, "!memory")
    assert "3. " in listed and "The gulls are loud" in listed.split("3. ", 1)[1]
    await collect(ctx.engine.post_turn(chat, "The tide turns at six.", "$tide"))  # newer memories come
    await close_both(ctx)

    ctx = await open_both(tmp_path)  # the bot restarts
    forgot = await say(ctx, story, "!forget 3")
    assert "The gulls are loud" in forgot
    assert "The gulls are loud" not in await say(ctx, story, "!memory gulls")
    assert "already forgotten" in await say(ctx, story, "!forget 3")
    await close_both(ctx)


async def test_forget_without_a_list_or_a_number_says_what_to_do(tmp_path: Path) -> None:
    ctx = await open_both(tmp_path)
    chat = (await ctx.engine.create_chat(owner="@alice:localhost", host=HOST)).chat_id
    story = RoomMeta("!story", RoomType.STORY, "@alice:localhost", "!space", chat, "mx-1")
    assert "Show the memories first with `!memory`" in await say(ctx, story, "!forget 1")
    assert "Usage: `!forget <number>`" in await say(ctx, story, "!forget the boat")
    assert "remembers nothing yet" in await say(ctx, story, "!memory")
    await close_both(ctx)
