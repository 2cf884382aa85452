"""Directed edges, plot threads, planned world events and meanwhile digests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import CharacterNotFoundError, IllegalTransitionError, ThreadNotFoundError
from core.state import digests, edges, plans, threads, turns, world
from tests.core.conftest import PLAYER, STORY_START, row_counts


async def test_edges_are_directed_and_independent(db, chat):
    await edges.set_edge(db, "chat-1", "ada", "bram", affinity=40, trust=10, summary="fond of him")
    await edges.set_edge(db, "chat-1", "bram", "ada", affinity=-30, trust=-60, summary="suspects her")
    await edges.adjust_edge(db, "chat-1", "ada", "bram", affinity_delta=5)
    ab = await edges.get_edge(db, "chat-1", "ada", "bram")
    ba = await edges.get_edge(db, "chat-1", "bram", "ada")
    assert (ab.affinity, ab.trust, ab.summary) == (45, 10, "fond of him")
    assert (ba.affinity, ba.trust, ba.summary) == (-30, -60, "suspects her")
    assert ab.updated_at == STORY_START


async def test_edges_are_per_chat_and_default_to_neutral(db, chat):
    await world.create_chat(db, owner="@p:hs", host="ada", guest="bram", clock=STORY_START, chat_id="chat-2")
    await edges.set_edge(db, "chat-1", "ada", PLAYER, affinity=50, trust=50)
    other = await edges.get_edge(db, "chat-2", "ada", PLAYER)
    assert (other.affinity, other.trust, other.updated_at) == (0, 0, None)
    assert [e.to_id for e in await edges.edges_from(db, "chat-1", "ada")] == [PLAYER]
    assert await edges.edges_in_chat(db, "chat-2") == []


async def test_edge_history_lives_in_the_log_and_compensation_restores(db, chat):
    await edges.adjust_edge(db, "chat-1", "cora", "dov", affinity_delta=10, trust_delta=5, summary="a start")
    await world.advance_clock(db, "chat-1", timedelta(hours=1))
    await edges.adjust_edge(db, "chat-1", "cora", "dov", affinity_delta=90, trust_delta=200, reason="saved her life")
    top = await edges.get_edge(db, "chat-1", "cora", "dov")
    assert (top.affinity, top.trust) == (100, 100), "clamped"
    history = await edges.edge_history(db, "chat-1", "cora", "dov")
    assert [(h.affinity, h.trust, h.reason) for h in history] == [(10, 5, ""), (100, 100, "saved her life")]
    previous = history[-2]
    await edges.set_edge(db, "chat-1", "cora", "dov", affinity=previous.affinity, trust=previous.trust,
                         summary=previous.summary, reason="compensation")
    restored = await edges.get_edge(db, "chat-1", "cora", "dov")
    assert (restored.affinity, restored.trust, restored.summary) == (10, 5, "a start")
    assert await edges.edge_history(db, "chat-1", "dov", "cora") == []


async def test_edges_need_known_ends(db, chat):
    before = await row_counts(db)
    with pytest.raises(CharacterNotFoundError):
        await edges.set_edge(db, "chat-1", "ada", "ghost", affinity=1, trust=1)
    assert await row_counts(db) == before


async def test_thread_lifecycle_with_story_times(db, chat):
    thread = await threads.open_thread(db, "chat-1", "The missing maps", "Three maps stolen.")
    assert (thread.status, thread.opened_at) == ("open", STORY_START)
    await world.advance_clock(db, "chat-1", timedelta(hours=3))
    await threads.update_thread(db, "chat-1", thread.thread_id, "Salt at every scene.")
    await threads.close_thread(db, "chat-1", thread.thread_id, "The gulls did it.")
    closed = await threads.require_thread(db, thread.thread_id)
    assert (closed.status, closed.summary, closed.resolution) == ("closed", "Salt at every scene.", "The gulls did it.")
    assert closed.closed_at == closed.updated_at == STORY_START + timedelta(hours=3)
    before = await row_counts(db)
    with pytest.raises(IllegalTransitionError):
        await threads.update_thread(db, "chat-1", thread.thread_id, "late news")
    with pytest.raises(IllegalTransitionError):
        await threads.close_thread(db, "chat-1", thread.thread_id)
    assert await row_counts(db) == before
    await threads.reopen_thread(db, "chat-1", thread.thread_id)
    assert [t.thread_id for t in await threads.list_threads(db, "chat-1", "open")] == [thread.thread_id]
    with pytest.raises(ThreadNotFoundError):
        await threads.close_thread(db, "chat-1", 777)


async def test_world_event_lifecycle(db, chat):
    due = STORY_START + timedelta(hours=2)
    fair = await plans.plan_world_event(db, "chat-1", "The fair opens", description="Stalls on the quay", due_at=due)
    assert (fair.status, fair.due_at, fair.planned_at) == ("planned", due, STORY_START)
    assert await plans.due_world_events(db, "chat-1", STORY_START) == []
    assert [e.world_event_id for e in await plans.due_world_events(db, "chat-1", due)] == [fair.world_event_id]
    await world.set_clock(db, "chat-1", due)
    before = await row_counts(db)
    with pytest.raises(IllegalTransitionError):
        await plans.transition_world_event(db, "chat-1", fair.world_event_id, "completed")
    assert await row_counts(db) == before
    await plans.transition_world_event(db, "chat-1", fair.world_event_id, "started")
    await world.advance_clock(db, "chat-1", timedelta(hours=4))
    await plans.transition_world_event(db, "chat-1", fair.world_event_id, "completed")
    done = await plans.require_world_event(db, fair.world_event_id)
    assert (done.status, done.started_at, done.ended_at) == ("completed", due, due + timedelta(hours=4))
    for illegal in ("started", "completed", "cancelled"):
        with pytest.raises(IllegalTransitionError):
            await plans.transition_world_event(db, "chat-1", fair.world_event_id, illegal)
    # Compensation steps back, one transition at a time.
    with pytest.raises(IllegalTransitionError):
        await plans.revert_world_event(db, "chat-1", fair.world_event_id, "planned")
    await plans.revert_world_event(db, "chat-1", fair.world_event_id, "started")
    reverted = await plans.require_world_event(db, fair.world_event_id)
    assert (reverted.status, reverted.ended_at) == ("started", None)
    await plans.transition_world_event(db, "chat-1", fair.world_event_id, "cancelled")
    assert [e.status for e in await plans.list_world_events(db, "chat-1", ["cancelled"])] == ["cancelled"]
    assert await plans.list_world_events(db, "chat-1", ["planned"]) == []


async def test_digests_are_consumed_exactly_once(db, chat):
    meanwhile = await world.open_scene(db, "chat-1", kind="meanwhile", present=["ada", "bram"])
    first = await digests.create_digest(db, "chat-1", "Ada and Bram argued.", scene_id=meanwhile.scene_id,
                                        participants=["ada", "bram"])
    second = await digests.create_digest(db, "chat-1", "Bram left town.")
    turn, _ = await turns.record_turn(db, "chat-1", "user", PLAYER, "Morning!")
    taken = await digests.consume_pending_digests(db, "chat-1", turn.turn_id)
    assert [d.digest_id for d in taken] == [first.digest_id, second.digest_id]
    assert await digests.consume_pending_digests(db, "chat-1", turn.turn_id) == []
    used = await digests.require_digest(db, first.digest_id)
    assert (used.status, used.consumed_by_turn, used.participants) == ("consumed", turn.turn_id, ("ada", "bram"))
    before = await row_counts(db)
    with pytest.raises(IllegalTransitionError):
        await digests.consume_digest(db, "chat-1", first.digest_id)
    assert await row_counts(db) == before
