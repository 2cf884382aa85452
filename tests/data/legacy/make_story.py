"""Makes tests/data/legacy/engine-0.1.sqlite3: stories written by rpbot 0.1 (one player per story).

Run once, with the code of the commit named in the README beside this file, from the repository root:

    .venv/bin/python tests/data/legacy/make_story.py tests/data/legacy/engine-0.1.sqlite3

Two stories of one owner and one of another, with every event kind of that release: characters
(built-in, imported card, re-import), personas, a host-only story and a host-and-guest one, turns
and swipes (regenerate), a truncated turn (cancel), received and answered lines, scenes closed by a
line and by command, a reopened scene, presence changes, skips and jumps, planned world events with
transitions, reverts and withdrawals, threads opened, updated, closed, withdrawn and reopened, a
meanwhile scene with its digest, edges from the relationship reading, memory significance changes,
a retracted and restored memory, a title change, lore from a card's book and from world info.
"""

from __future__ import annotations

import asyncio
import re
import sys
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path

from core.engine import Engine
from core.llm import FakeLLM
from core.state import memory as memory_state
from core.state import plans, world
from core.state import threads as thread_state
from core.state import turns as turn_state

DATA = Path(__file__).resolve().parent.parent


def addressee(messages):
    line = messages[-1]["content"].rsplit("latest line:\n", 1)[-1]
    if "we rest" in line:
        return {"speaker": "wren-halloway", "time": "skip", "amount": "2h", "close_scene": True}
    if "we part" in line:
        return {"speaker": "wren-halloway", "close_scene": True}
    if "Odile" in line:
        return {"speaker": "odile-marchetti", "confidence": "high"}
    return {"speaker": "wren-halloway", "confidence": "high"}


class Story:
    def __init__(self) -> None:
        self.narrated = 0
        self.closes = 0

    def narrate(self, messages):
        self.narrated += 1
        system = messages[0]["content"]
        who = next((n for n in ("Odile", "Wren", "Tamsin", "Maren") if f"You are {n}" in system or n in system[:200]), "Wren")
        mood = ["the festival begins", "the lanterns sway", "the festival is over", "salt on the sill",
                "thank you, friend"][self.narrated % 5]
        return f"{who} reply {self.narrated}: {mood}, said with some feeling."

    def threads(self, messages):
        self.closes += 1
        ids = [int(x) for x in re.findall(r"- id (\d+):", messages[-1]["content"])]
        if self.closes == 1:
            return {"open": [{"title": "The salt thief", "summary": "Salt on the sills."}]}
        if self.closes == 2 and ids:
            return {"update": [{"thread_id": ids[0], "summary": "The thief works at night."}],
                    "open": [{"title": "The dark lamp"}]}
        if self.closes == 3 and ids:
            return {"close": [{"thread_id": ids[0], "resolution": "Bram confessed."}]}
        return {}


def lifecycle(messages):
    text = messages[-1]["content"]
    exchange = text.split("answered:", 1)[-1]
    if "salt on the sill" in exchange and "Salt merchants" not in text:
        return {"planned": [{"title": "Salt merchants arrive", "when": "tomorrow 8am"}]}
    for event_id, status in re.findall(r"- id (\d+): [^(]+\((planned|started)", text):
        if status == "planned" and "festival begins" in exchange:
            return {"transitions": [{"world_event_id": int(event_id), "to": "started"}]}
        if status == "started" and "festival is over" in exchange:
            return {"transitions": [{"world_event_id": int(event_id), "to": "completed"}]}
    return {"transitions": []}


def llm() -> FakeLLM:
    story = Story()
    return FakeLLM(routes={
        "addressee": addressee,
        "narrate": story.narrate,
        "scene_close": lambda messages: "From where I stood: " + messages[-1]["content"][-80:],
        "threads": story.threads,
        "lifecycle": lifecycle,
        "relationship": {"affinity": 1, "trust": 1, "why": "kind words"},
        "meanwhile": lambda messages: f"Off-screen line {len(messages)}: the harbour master's ledger.",
        "skip": "Two hours slip by.",
    })


async def drain(updates) -> list:
    return [u async for u in updates]


async def settle(engine: Engine, chat_id: str) -> None:
    await engine.pipeline._settle(chat_id)


async def main(path: Path) -> None:
    path.unlink(missing_ok=True)
    engine = await Engine.open(path, llm())
    card = await engine.import_character((DATA / "ilse_varga_v3.json").read_bytes())
    await engine.import_character((DATA / "ilse_varga_v3.json").read_bytes())  # a re-import
    await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    await engine.set_persona("@ana:localhost", "Ana Reyes", "A cartographer with ink on her sleeves.")
    await engine.ensure_persona("@bo:localhost", "Bo")

    # Story 1: host and guest, the long one.
    chat = await engine.create_chat(owner="@ana:localhost", host="wren-halloway", guest="odile-marchetti")
    chat_id = chat.chat_id
    await engine.greeting(chat_id)
    await engine.guest_entrance(chat_id)
    start = await engine.chat_clock(chat_id)
    for hours in (3, 30, 60):
        await engine.plan_event(chat_id, f"Lantern festival +{hours}h", start + timedelta(hours=hours))
    for i in range(40):
        text = (f"Line {i}: " + ("we rest for two hours." if i in (12, 30) else "we part for now." if i == 22
                                 else "Odile, what of the harbour?" if i % 4 == 1 else "thank you, tell me about the harbour."))
        source = f"$ana-{i}"
        await engine.receive_line(chat_id, text, source)
        await drain(engine.post_turn(chat_id, text, source))
        await engine.line_answered(chat_id, source)
        if i % 7 == 3:
            await settle(engine, chat_id)
            await drain(engine.regenerate(chat_id))
        if i == 18:
            await drain(engine.meanwhile(chat_id, "Captain Odile Marchetti", "Brother Tamsin Vale", "the harbour master's ledger"))
    await engine.receive_line(chat_id, "Line owed: are you still there?", "$ana-owed")  # owed at the snapshot
    await engine.jump(chat_id, (await engine.chat_clock(chat_id)) + timedelta(days=1, hours=2))
    await engine.close_scene(chat_id)
    await settle(engine, chat_id)
    async with engine.db.transaction() as tx:
        scene = (await world.list_scenes(tx, chat_id))[-1]
        await world.reopen_scene(tx, chat_id, scene.scene_id)
        await world.set_scene_presence(tx, chat_id, scene.scene_id, ["you", "wren-halloway", "odile-marchetti"])
        await world.set_chat_title(tx, chat_id, "Wren, Odile and the salt thief")
        memory = (await memory_state.recent_memories_for(tx, chat_id, "you", limit=1))[0]
        await memory_state.set_memory_significance(tx, chat_id, memory.memory_id, 3)
        await memory_state.retract_memory(tx, chat_id, memory.memory_id, reason="fixture")
        await memory_state.restore_memory(tx, chat_id, memory.memory_id)
        opened = await thread_state.open_thread(tx, chat_id, "A thread to withdraw")
        await thread_state.withdraw_thread(tx, chat_id, opened.thread_id)
        closed = await thread_state.open_thread(tx, chat_id, "A thread closed and reopened")
        await thread_state.close_thread(tx, chat_id, closed.thread_id, "for now")
        await thread_state.reopen_thread(tx, chat_id, closed.thread_id)
        dropped = await plans.plan_world_event(tx, chat_id, "A plan dropped", due_at=start + timedelta(days=9))
        await plans.withdraw_world_event(tx, chat_id, dropped.world_event_id)
        swiped = await tx.conn.fetch_all(
            "SELECT min(turn_id), max(turn_id) FROM turns WHERE chat_id = ? GROUP BY sibling_group HAVING count(*) > 1 "
            "ORDER BY 2 DESC LIMIT 1", (chat_id,))
        older, newer = next(iter(swiped))
        await turn_state.show_sibling(tx, chat_id, newer, older)  # a swipe back, then forth again
        await turn_state.show_sibling(tx, chat_id, older, newer)
    await engine.import_lore(chat_id, (DATA / "world_info_gullrock.json").read_bytes(), "world_info_gullrock.json")

    # Story 2: an imported card alone, a cancelled reply, a skip by command.
    chat2 = await engine.create_chat(owner="@ana:localhost", host=card.character_id, title="Ilse")
    await engine.greeting(chat2.chat_id)
    for i in range(6):
        await drain(engine.post_turn(chat2.chat_id, f"Ilse line {i}: tell me of the mine, friend.", f"$ilse-{i}"))
    async with aclosing(engine.post_turn(chat2.chat_id, "Ilse, a long tale of the mine, friend.", "$ilse-cut")) as cut:
        async for _update in cut:
            break  # the player went away after the first words: the reply is kept, truncated
    last = (await turn_state.recent_turns(engine.db, chat2.chat_id, 1))[-1]
    await turn_state.truncate_turn(engine.db, chat2.chat_id, last.turn_id, last.text)
    await engine.skip(chat2.chat_id, timedelta(hours=3))
    await engine.close_scene(chat2.chat_id)
    await settle(engine, chat2.chat_id)

    # Story 3: another player, a guest removed.
    chat3 = await engine.create_chat(owner="@bo:localhost", host="tamsin-vale", guest="wren-halloway")
    await engine.greeting(chat3.chat_id)
    for i in range(4):
        await drain(engine.post_turn(chat3.chat_id, f"Bo line {i}: a quiet word, Tamsin.", f"$bo-{i}"))
    async with engine.db.transaction() as tx:
        await world.set_guest(tx, chat3.chat_id, None)
    await settle(engine, chat3.chat_id)
    await engine.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
