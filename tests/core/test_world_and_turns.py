"""Chats, the story clock, scenes, and turns (idempotency, swipes, truncation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ConflictError, IllegalTransitionError, SceneNotFoundError, TurnNotFoundError
from core.eventlog import append_and_apply
from core.state import turns, world
from tests.core.conftest import PLAYER, STORY_START, row_counts


async def test_chat_holds_host_guest_owner_title_and_story_clock(db, chat):
    assert (chat.chat_id, chat.owner, chat.host, chat.guest) == ("chat-1", "@player:localhost", "ada", "bram")
    assert chat.clock == STORY_START
    await world.set_guest(db, "chat-1", None)
    await world.set_chat_title(db, "chat-1", "Fog")
    new_time = await world.advance_clock(db, "chat-1", timedelta(hours=2, minutes=30))
    assert new_time == STORY_START + timedelta(hours=2, minutes=30)
    again = await world.require_chat(db, "chat-1")
    assert (again.guest, again.title, again.clock) == (None, "Fog", new_time)
    assert [c.chat_id for c in await world.list_chats(db, owner="@player:localhost")] == ["chat-1"]
    assert await world.list_chats(db, owner="@other:hs") == []


async def test_story_times_are_normalised_naive_seconds(db, chat):
    aware = datetime(1890, 10, 4, 9, 15, 42, 123456, tzinfo=UTC)
    await world.set_clock(db, "chat-1", aware, reason="jump")
    assert await world.get_clock(db, "chat-1") == datetime(1890, 10, 4, 9, 15, 42)


async def test_one_open_main_scene_and_idempotent_close(db, chat):
    scene = await world.open_scene(db, "chat-1", title="Harbour", present=[PLAYER, "ada"])
    assert scene.is_open and scene.started_at == STORY_START and scene.present == (PLAYER, "ada")
    before = await row_counts(db)
    with pytest.raises(IllegalTransitionError):
        await world.open_scene(db, "chat-1")
    assert await row_counts(db) == before
    meanwhile = await world.open_scene(db, "chat-1", kind="meanwhile", present=["ada", "bram"])
    assert (await world.current_scene(db, "chat-1")).scene_id == scene.scene_id
    await world.advance_clock(db, "chat-1", timedelta(hours=1))
    closed = await world.close_scene(db, "chat-1", scene.scene_id)
    assert closed.closed_at == STORY_START + timedelta(hours=1)
    events = (await row_counts(db))["events"]
    assert await world.close_scene(db, "chat-1", scene.scene_id) == closed
    assert (await row_counts(db))["events"] == events, "re-closing writes nothing"
    with pytest.raises(IllegalTransitionError):
        await append_and_apply(db, "scene_closed", {"chat_id": "chat-1", "scene_id": scene.scene_id})
    assert await world.current_scene(db, "chat-1") is None
    assert [s.scene_id for s in await world.list_scenes(db, "chat-1", open_only=True)] == [meanwhile.scene_id]
    with pytest.raises(SceneNotFoundError):
        await world.close_scene(db, "chat-1", 424242)


async def test_turns_default_to_open_scene_and_chat_clock(db, chat):
    scene = await world.open_scene(db, "chat-1")
    await world.advance_clock(db, "chat-1", timedelta(minutes=5))
    turn, created = await turns.record_turn(db, "chat-1", "user", PLAYER, "Hello?", source_id="$abc")
    assert created and turn.scene_id == scene.scene_id
    assert turn.story_time == STORY_START + timedelta(minutes=5)
    assert turn.sibling_group == turn.turn_id and turn.is_shown and not turn.truncated


async def test_same_source_id_returns_the_existing_turn_and_writes_nothing(db, chat):
    first, created = await turns.record_turn(db, "chat-1", "user", PLAYER, "Hello", source_id="$evt")
    before = await row_counts(db)
    again, created_again = await turns.record_turn(db, "chat-1", "user", PLAYER, "Hello (resent)", source_id="$evt")
    assert created and not created_again and again == first
    assert await row_counts(db) == before
    with pytest.raises(ConflictError):
        await append_and_apply(db, "turn_recorded", {
            "chat_id": "chat-1", "role": "user", "speaker": PLAYER, "text": "dup", "source_id": "$evt",
        })
    assert await turns.get_turn_by_source(db, "chat-1", "$evt") == first
    assert await turns.get_turn_by_source(db, "chat-1", "$other") is None


async def test_source_ids_are_unique_per_chat_not_globally(db, chat):
    await world.create_chat(db, owner="@p:hs", host="cora", clock=STORY_START, chat_id="chat-2")
    a, _ = await turns.record_turn(db, "chat-1", "user", PLAYER, "one", source_id="$same")
    b, created = await turns.record_turn(db, "chat-2", "user", PLAYER, "two", source_id="$same")
    assert created and a.turn_id != b.turn_id


async def test_recent_turns_are_shown_turns_in_order(db, chat):
    ids = []
    for i in range(6):
        turn, _ = await turns.record_turn(db, "chat-1", "user" if i % 2 == 0 else "assistant",
                                          PLAYER if i % 2 == 0 else "ada", f"line {i}")
        ids.append(turn.turn_id)
    recent = await turns.recent_turns(db, "chat-1", 4)
    assert [t.turn_id for t in recent] == ids[-4:]
    assert (await turns.last_turn(db, "chat-1")).turn_id == ids[-1]


async def test_regenerate_supersedes_the_last_reply_and_keeps_siblings(db, chat):
    user, _ = await turns.record_turn(db, "chat-1", "user", PLAYER, "Where is the key?")
    await world.advance_clock(db, "chat-1", timedelta(minutes=7))
    reply, _ = await turns.record_turn(db, "chat-1", "assistant", "ada", "Under the mat.")
    swipe, _ = await turns.record_turn(db, "chat-1", "assistant", "ada", "In the well.", supersedes=reply.turn_id)
    assert swipe.sibling_group == reply.sibling_group == reply.turn_id
    assert swipe.story_time == reply.story_time and swipe.scene_id == reply.scene_id
    assert (await turns.require_turn(db, reply.turn_id)).superseded_by == swipe.turn_id
    assert [t.turn_id for t in await turns.recent_turns(db, "chat-1", 10)] == [user.turn_id, swipe.turn_id]
    assert (await turns.last_turn(db, "chat-1")).turn_id == swipe.turn_id
    assert [t.turn_id for t in await turns.sibling_turns(db, reply.turn_id)] == [reply.turn_id, swipe.turn_id]
    with pytest.raises(IllegalTransitionError):
        await turns.record_turn(db, "chat-1", "assistant", "ada", "again", supersedes=reply.turn_id)
    # Swipe back to the first answer.
    await turns.show_sibling(db, "chat-1", swipe.turn_id, reply.turn_id)
    assert (await turns.last_turn(db, "chat-1")).turn_id == reply.turn_id
    assert (await turns.require_turn(db, swipe.turn_id)).superseded_by == reply.turn_id
    with pytest.raises(IllegalTransitionError):
        await turns.show_sibling(db, "chat-1", reply.turn_id, user.turn_id)


async def test_stopped_generation_keeps_partial_text_marked_truncated(db, chat):
    reply, _ = await turns.record_turn(db, "chat-1", "assistant", "ada", "")
    await turns.truncate_turn(db, "chat-1", reply.turn_id, "The key is under the")
    kept = await turns.require_turn(db, reply.turn_id)
    assert kept.truncated and kept.text == "The key is under the"
    direct, _ = await turns.record_turn(db, "chat-1", "assistant", "ada", "Half a", truncated=True)
    assert direct.truncated
    with pytest.raises(TurnNotFoundError):
        await turns.truncate_turn(db, "chat-1", 999_999, "x")


async def test_turn_of_another_chat_cannot_be_touched(db, chat):
    await world.create_chat(db, owner="@p:hs", host="cora", clock=STORY_START, chat_id="chat-2")
    other, _ = await turns.record_turn(db, "chat-2", "assistant", "cora", "Mine.")
    with pytest.raises(TurnNotFoundError):
        await turns.truncate_turn(db, "chat-1", other.turn_id, "stolen")
    with pytest.raises(TurnNotFoundError):
        await turns.record_turn(db, "chat-1", "assistant", "ada", "x", supersedes=other.turn_id)
