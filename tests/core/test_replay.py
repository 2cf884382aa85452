"""Replay: drop every projection, re-apply the log, get identical state.

The story writes its one player as "you" in places, as stories older than several players did:
replay reads it as the story's owner, like the live projection.
"""

from __future__ import annotations

import json
from datetime import timedelta

from core.eventlog import Database, clear_projections, replay
from core.eventlog.migrations import PROJECTION_TABLES
from core.services.lorebook import import_world_info
from core.state import digests, edges, lines, memory, personas, plans, players, threads, turns, world
from tests.core.conftest import STORY_START, add_cast, check_fts_index, dump_projections, row_counts


async def play_long_story(db: Database) -> None:
    """Two chats, scenes, swipes, truncation, memories, edges, threads, plans, digests, a retraction, lore."""
    await add_cast(db)
    one = await world.create_chat(db, owner="@p:hs", host="ada", guest="bram", clock=STORY_START, chat_id="one")
    two = await world.create_chat(db, owner="@q:hs", host="cora", clock=STORY_START + timedelta(days=3), chat_id="two")
    await world.set_chat_title(db, one.chat_id, "The lighthouse")
    await personas.set_persona(db, "@p:hs", "Maren", "a deckhand")
    await personas.set_persona(db, "@p:hs", "Maren Ashdown", "a deckhand, newly arrived")
    scene = await world.open_scene(db, one.chat_id, title="Harbour", present=["you", "ada", "bram"])
    quest = await threads.open_thread(db, one.chat_id, "Who stole the maps?", "Three maps gone in a week.")
    festival = await plans.plan_world_event(
        db, one.chat_id, "Lantern festival", due_at=STORY_START + timedelta(hours=5)
    )
    storm = await plans.plan_world_event(db, one.chat_id, "Storm", due_at=STORY_START + timedelta(hours=2))
    for i in range(12):
        user, _ = await turns.record_turn(db, one.chat_id, "user", "you", f"I ask about the maps, take {i}",
                                          source_id=f"$user{i}")
        reply, _ = await turns.record_turn(db, one.chat_id, "assistant", "ada", f"Ada answers about lanterns {i}")
        await memory.record_memory(db, one.chat_id, f"You asked Ada about the stolen maps ({i}).",
                                   ["you", "ada"] if i % 3 else ["you", "ada", "bram"],
                                   significance=1 + i % 3, source_turn_id=user.turn_id)
        await edges.adjust_edge(db, one.chat_id, "ada", "you", affinity_delta=3, trust_delta=1 + i % 2)
        if i % 4 == 0:
            await edges.adjust_edge(db, one.chat_id, "you", "ada", affinity_delta=-2, summary="wary of her")
        await world.advance_clock(db, one.chat_id, timedelta(minutes=20))
        if i == 5:
            await plans.transition_world_event(db, one.chat_id, storm.world_event_id, "started")
            await threads.update_thread(db, one.chat_id, quest.thread_id, "The thief leaves salt behind.")
        if i == 8:
            await plans.transition_world_event(db, one.chat_id, storm.world_event_id, "completed")
            await plans.transition_world_event(db, one.chat_id, festival.world_event_id, "cancelled")
            await plans.revert_world_event(db, one.chat_id, festival.world_event_id, "planned")
    # A regenerate: the last reply is superseded; its memory is retracted by compensation.
    last = await turns.last_turn(db, one.chat_id)
    assert last is not None
    doomed = await memory.record_memory(db, one.chat_id, "Ada admitted she burned the map.", ["you", "ada"],
                                        significance=3, source_turn_id=last.turn_id)
    swipe, _ = await turns.record_turn(db, one.chat_id, "assistant", "ada", "Ada shrugs.", supersedes=last.turn_id)
    await memory.retract_memory(db, one.chat_id, doomed.memory_id, reason="regenerated")
    await turns.show_sibling(db, one.chat_id, swipe.turn_id, last.turn_id)
    await turns.show_sibling(db, one.chat_id, last.turn_id, swipe.turn_id)
    stopped, _ = await turns.record_turn(db, one.chat_id, "assistant", "bram", "Bram begins to")
    await turns.truncate_turn(db, one.chat_id, stopped.turn_id, "Bram begins")
    await world.close_scene(db, one.chat_id, scene.scene_id)
    for pov in ("ada", "bram"):
        await memory.record_memory(db, one.chat_id, f"Summary of the harbour scene from {pov}'s view.", [pov],
                                   kind="summary", pov=pov, scene_id=scene.scene_id, significance=3)
    # A stretch of the scene summarized as it went, the story so far rolled up, and a memory forgotten.
    first, last = (await turns.scene_turns(db, scene.scene_id))[0], (await turns.scene_turns(db, scene.scene_id))[5]
    await memory.record_memory(db, one.chat_id, "Ada's part: the maps, the salt.", ["ada", "you"], kind="summary",
                               pov="ada", scene_id=scene.scene_id, summary_of="part", covers=(first.turn_id, last.turn_id))
    await memory.record_memory(db, one.chat_id, "Ada's story so far: maps went missing.", ["ada"], kind="summary",
                               pov="ada", scene_id=scene.scene_id, summary_of="story", covers=(first.turn_id, last.turn_id))
    forgotten = await memory.record_memory(db, one.chat_id, "Bram saw Ada at the customs house.", ["you", "ada", "bram"])
    await memory.forget_memory(db, one.chat_id, forgotten.memory_id, "ada")
    # Meanwhile: two characters without the player, then a digest consumed once.
    meanwhile = await world.open_scene(db, one.chat_id, kind="meanwhile", present=["ada", "bram"])
    await memory.record_memory(db, one.chat_id, "Ada and Bram argue about the salt.", ["ada", "bram"],
                               scene_id=meanwhile.scene_id)
    await edges.set_edge(db, one.chat_id, "bram", "ada", affinity=-20, trust=-5, summary="annoyed")
    await world.close_scene(db, one.chat_id, meanwhile.scene_id)
    await digests.create_digest(db, one.chat_id, "Meanwhile, Ada and Bram argued.", scene_id=meanwhile.scene_id,
                                participants=["ada", "bram"])
    await world.open_scene(db, one.chat_id, title="Morning", present=["you", "ada"])
    morning, _ = await turns.record_turn(db, one.chat_id, "user", "you", "Good morning", source_id="$morning")
    await digests.consume_pending_digests(db, one.chat_id, morning.turn_id)
    # A second player joins, says a line (witnessed from then on), and leaves; the chat's lines name who said them.
    await players.join(db, one.chat_id, "@r:hs")
    await personas.set_story_persona(db, one.chat_id, "@r:hs", "Rook")
    await turns.record_turn(db, one.chat_id, "user", "@r:hs", "Rook waves.", source_id="$rook", speaker_name="Rook")
    await memory.record_memory(db, one.chat_id, "Rook waved at Ada.", ["@p:hs", "@r:hs", "ada"])
    await lines.receive_line(db, one.chat_id, "$lamp", "And the lamp?", "@p:hs")
    await lines.receive_line(db, one.chat_id, "$gulls", "And the gulls?", "@r:hs")
    await players.leave(db, one.chat_id, "@r:hs")
    await lines.answer_line(db, one.chat_id, "$lamp")
    await threads.close_thread(db, one.chat_id, quest.thread_id, "It was the gulls.")
    await world.set_guest(db, one.chat_id, "dov")
    # The second chat runs interleaved with its own clock and memories.
    await world.open_scene(db, two.chat_id, present=["you", "cora"])
    for i in range(5):
        await turns.record_turn(db, two.chat_id, "user", "you", f"Cora, the maps {i}?", source_id=f"$user{i}")
        await memory.record_memory(db, two.chat_id, f"Cora heard about maps {i}.", ["you", "cora"])
    await world.set_clock(db, two.chat_id, STORY_START + timedelta(days=4), reason="jump")
    # Taking back: an edited line, a continued reply, a line and its reply withdrawn with the scene
    # they opened, the digest told with that line pending again; a note and a story's own persona.
    edited, _ = await turns.record_turn(db, two.chat_id, "user", "you", "Cora, the chart?", source_id="$chart",
                                        speaker_name="Maren")
    await turns.edit_turn(db, two.chat_id, edited.turn_id, "Cora, the sea chart?")
    answer, _ = await turns.record_turn(db, two.chat_id, "assistant", "cora", "It is")
    await turns.continue_turn(db, two.chat_id, answer.turn_id, " in the drawer.", truncated=False)
    await world.close_scene(db, two.chat_id, (await world.current_scene(db, two.chat_id)).scene_id)
    opened = await world.open_scene(db, two.chat_id, present=["you", "cora"])
    await digests.create_digest(db, two.chat_id, "Meanwhile, Cora slept.", participants=["cora"])
    doomed_line, _ = await turns.record_turn(db, two.chat_id, "user", "you", "Goodbye.", source_id="$bye")
    [told] = await digests.consume_pending_digests(db, two.chat_id, doomed_line.turn_id)
    await turns.withdraw_turn(db, two.chat_id, doomed_line.turn_id)
    await digests.return_digest(db, two.chat_id, told.digest_id)
    await world.withdraw_scene(db, two.chat_id, opened.scene_id)
    await world.set_note(db, two.chat_id, "Keep it gentle.")
    await edges.set_edge(db, two.chat_id, "cora", "you", affinity=4, trust=1, cause_turn_id=answer.turn_id)
    await edges.clear_edge(db, two.chat_id, "cora", "you", reason="undo")
    await personas.set_story_persona(db, two.chat_id, "@q:hs", "Quill", "a cartographer")
    # Lore: a book imported twice (the second replaces the first), one entry known to Bram only.
    harbour = {"entries": {
        "0": {"uid": 0, "key": ["maps"], "content": "The harbour maps are kept in the customs house."},
        "1": {"uid": 1, "key": ["salt"], "content": "Bram smuggles salt.",
              "characterFilter": {"isExclude": False, "names": ["Bram"], "tags": []}},
    }}
    await import_world_info(db, one.chat_id, json.dumps(harbour).encode(), "harbour.json")
    harbour["entries"]["2"] = {"uid": 2, "key": ["gulls"], "content": "The gulls steal everything.", "constant": True}
    await import_world_info(db, one.chat_id, json.dumps(harbour).encode(), "harbour.json")
    await import_world_info(db, two.chat_id, json.dumps(harbour).encode(), "harbour.json")


async def test_replay_rebuilds_identical_state(db):
    await play_long_story(db)
    await check_fts_index(db)
    before = await dump_projections(db)
    searches_before = await memory.search_memories(db, "one", "ada", "stolen maps", 50)
    assert all(before[table] for table in PROJECTION_TABLES), "the story should touch every projection"

    async with db.transaction() as tx:
        await clear_projections(tx)
    emptied = await row_counts(db)
    assert all(emptied[table] == 0 for table in PROJECTION_TABLES)
    assert emptied["events"] > 100
    assert (await dump_projections(db))["memories_fts"] == []

    replayed = await replay(db)
    assert replayed == emptied["events"]
    assert await dump_projections(db) == before
    await check_fts_index(db)
    assert await memory.search_memories(db, "one", "ada", "stolen maps", 50) == searches_before
    assert {r[0] for r in await db.reader.fetch_all("SELECT witness FROM memory_witnesses")} >= {"@p:hs", "@r:hs"}
    assert not await db.reader.fetch_all("SELECT 1 FROM turn_witnesses WHERE witness = 'you'")


async def test_replay_repairs_a_damaged_projection(db):
    await play_long_story(db)
    before = await dump_projections(db)
    async with db.transaction() as tx:
        await tx.conn.execute("UPDATE edges SET affinity = 99")
        await tx.conn.execute("UPDATE memories SET significance = 1")
        await tx.conn.execute("DELETE FROM world_events")
        await tx.conn.execute("UPDATE turns SET superseded_by = NULL")
    assert await dump_projections(db) != before
    await replay(db)
    assert await dump_projections(db) == before


async def test_replaying_twice_is_stable(db):
    await play_long_story(db)
    await replay(db)
    first = await dump_projections(db)
    await replay(db)
    assert await dump_projections(db) == first
