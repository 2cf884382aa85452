"""Rolling back what a turn caused, by compensating events (for regenerate / swipes).

What a turn caused, and how each is found exactly:
- memories: `source_turn_id` = the turn (`memories_from_turn`) -> `memory_retracted`;
- edges: edge changes whose `cause_turn_id` is the turn
  (`relationships.edge_changes_caused_by`) -> `edge_set` back to the prior value;
- world-event lifecycle transitions: changes (`world_event_changes`) whose
  `cause_turn_id` is the turn (exact, wherever they sit in the log) ->
  `world_event_reverted`, newest first.  Transitions recorded without a cause
  (by an after-turn step that does not name one) are attributed by position: those
  after the turn and before the chat's next turn (the engine finishes a turn's
  after-work before the chat's next turn starts);
- world events planned from the turn (`planned_by_turn`) -> `world_event_withdrawn`, after the transitions are reverted.
- rolling summaries made from the turn (a part of an open scene, a roll-up of parts, a story so
  far: the turn lies in the turns they cover, `summaries_made_from_turn`) -> `memory_retracted`;
  they are written again from the turns that stay.

- if the turn's scene is already closed, what its close derived from the scene: the
  per-POV summaries (with their key quotes) -> `memory_retracted`, and the thread
  changes detected at the close (`cause_scene_id`) -> `thread_withdrawn`,
  `thread_reopened` or `thread_updated` back to the prior text, newest first.  The
  scene stays closed (the player closed it); its summaries are then owed and written
  again from the new reply (`scenes.summarize_owed`, after the new reply).

`roll_back_turn` runs inside the caller's transaction, so the rollback and the new
swipe that supersedes the turn are one atomic change.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.eventlog import Transaction
from core.services.relationships import restore_edges_caused_by
from core.state import memory as memory_state
from core.state import plans, summaries, world
from core.state import threads as thread_state
from core.state import turns as turn_state

# The step back that undoes each transition (cancelled goes back to what it was before).
UNDO_OF_TRANSITION = {"started": "planned", "completed": "started"}


@dataclass(frozen=True)
class RollbackSummary:
    memories_retracted: int
    edges_restored: int
    world_events_reverted: int


async def revert_world_transitions_caused_by(tx: Transaction, chat_id: str, turn_id: int) -> int:
    transitions = await plans.world_transitions_caused_by(tx, chat_id, turn_id)
    for transition in reversed(transitions):
        target = UNDO_OF_TRANSITION.get(transition.to) or await plans.world_event_status_before(
            tx, chat_id, transition.world_event_id, transition.seq
        )
        await plans.revert_world_event(tx, chat_id, transition.world_event_id, target)  # type: ignore[arg-type]
    return len(transitions)


async def roll_back_turn(tx: Transaction, chat_id: str, turn_id: int) -> RollbackSummary:
    """Undo, by compensating events, everything turn `turn_id` caused (see the module docstring)."""
    world_events = await revert_world_transitions_caused_by(tx, chat_id, turn_id)
    for world_event_id in reversed(await plans.world_events_planned_by(tx, chat_id, turn_id)):
        await plans.withdraw_world_event(tx, chat_id, world_event_id)
        world_events += 1
    memories = await memory_state.memories_from_turn(tx, chat_id, turn_id)
    for memory in memories:
        await memory_state.retract_memory(tx, chat_id, memory.memory_id, reason=f"turn {turn_id} regenerated")
    made = await summaries.summaries_made_from_turn(tx, chat_id, turn_id)
    for summary_id in made:
        await memory_state.retract_memory(tx, chat_id, summary_id, reason=f"made from turn {turn_id}, rolled back")
    edges = await restore_edges_caused_by(tx, chat_id, turn_id)
    retracted = len(memories) + len(made)
    turn = await turn_state.get_turn(tx, turn_id)
    scene = await world.get_scene(tx, turn.scene_id) if turn and turn.scene_id else None
    if scene is not None and scene.kind == "main" and not scene.is_open:
        retracted += len(await roll_back_scene_close(tx, chat_id, scene.scene_id))
    return RollbackSummary(retracted, edges, world_events)


async def roll_back_scene_close(tx: Transaction, chat_id: str, scene_id: int) -> list[int]:
    """Undo what a closed scene's summaries derived (see the module docstring); the retracted summary ids."""
    summaries = await memory_state.live_summary_ids(tx, scene_id)
    for memory_id in summaries:
        await memory_state.retract_memory(tx, chat_id, memory_id, reason=f"scene {scene_id} summarized again")
    for change in reversed(await thread_state.thread_changes_caused_by_scene(tx, chat_id, scene_id)):
        thread = await thread_state.get_thread(tx, change.thread_id)
        if thread is None:
            continue
        if change.kind == "thread_opened":
            await thread_state.withdraw_thread(tx, chat_id, change.thread_id)
        elif change.kind == "thread_closed" and thread.status == "closed":
            await thread_state.reopen_thread(tx, chat_id, change.thread_id)
        elif change.kind == "thread_updated" and thread.status == "open" and change.summary_before is not None:
            await thread_state.update_thread(tx, chat_id, change.thread_id, change.summary_before, change.title_before)
    return summaries
