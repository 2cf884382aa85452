"""Taking back what the story holds, exactly: the one mechanism behind regenerate, takes,
continue, edit and rewind.

Every rollback is compensating events written inside the caller's transaction (the log
keeps the history, and replaying it gives the same tables), so a rollback and what replaces
it are one atomic change.  Afterwards the story equals a run that produced only what is
still shown.

What a turn caused, each found by a typed cause (`undo_turn`):
- memories whose `source_turn_id` is the turn -> `memory_retracted`;
- edge changes whose `cause_turn_id` is the turn -> `edge_set` back to the value before;
- world-event transitions it caused (`cause_turn_id`; or, recorded without a cause, after the
  turn and before the chat's next turn: the engine finishes a turn's after-work before the
  next turn starts) -> `world_event_reverted`, newest first; then the world events planned from
  it (`planned_by_turn`) -> `world_event_withdrawn`;
- rolling summaries made from the turn (a part of an open scene, a roll-up of parts, a story so
  far: the turn lies in the turns they cover, `summaries_made_from_turn`) -> `memory_retracted`;
  they are written again from the turns that stay;
- a narration (a time skip or jump) -> `clock_set` back to the clock before it (the clock's
  history is `clock_changes`); the events the skip started name it as their cause (above);
- when the turn's main scene is closed, what that close derived from the scene: the per-POV
  summaries with their key quotes -> `memory_retracted`, and the plot-thread changes detected
  at the close (`cause_scene_id`) -> `thread_withdrawn`, `thread_reopened` or `thread_updated`
  back to the text before, newest first.  A scene closed by command stays closed: its
  summaries are then owed and written again from what is shown (`scenes.summarize_owed`).

`take_back_from(tx, chat_id, first)`: every shown main-story turn from `first` on leaves the
story (withdrawn, with the other takes of each reply), newest first, each with what it caused
undone; meanwhile digests told with a withdrawn line are pending again; a main scene of theirs
that no longer shows any turn (one a taken-back line opened) is withdrawn; then the scene a
taken-back line closed in words is reopened.  `keep` names turns that stay (the line an edit
rewrites): what they caused is undone all the same.  A meanwhile scene played in between
stays (a scene of its own, asked for by command), and so do other story actions by command
(a plan, a scene closed by `!scene close`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from core.eventlog import Transaction
from core.services.relationships import restore_edges_caused_by
from core.state import digests as digest_state
from core.state import memory as memory_state
from core.state import plans, players, summaries, world
from core.state import threads as thread_state
from core.state import turns as turn_state
from core.state.turns import Turn

# The step back that undoes each transition (cancelled goes back to what it was before).
UNDO_OF_TRANSITION = {"started": "planned", "completed": "started"}


@dataclass
class TakenBack:
    """What a take-back did: the turns that left the story (newest first) and what changed besides."""

    turn_ids: list[int] = field(default_factory=list)
    lines: list[Turn] = field(default_factory=list)  # the player's lines among them
    scenes_reopened: list[int] = field(default_factory=list)
    memories_retracted: int = 0
    edges_restored: int = 0
    world_events_reverted: int = 0
    _scenes_rolled_back: set[int] = field(default_factory=set)


async def revert_world_transitions_caused_by(tx: Transaction, chat_id: str, turn_id: int) -> int:
    transitions = await plans.world_transitions_caused_by(tx, chat_id, turn_id)
    for transition in reversed(transitions):
        target = UNDO_OF_TRANSITION.get(transition.to) or await plans.world_event_status_before(
            tx, chat_id, transition.world_event_id, transition.seq
        )
        await plans.revert_world_event(tx, chat_id, transition.world_event_id, target)  # type: ignore[arg-type]
    return len(transitions)


async def undo_turn(tx: Transaction, chat_id: str, turn: Turn, done: TakenBack | None = None) -> TakenBack:
    """Undo, by compensating events, everything `turn` caused (see the module docstring); the
    turn itself stays as it is."""
    done = done if done is not None else TakenBack()
    done.world_events_reverted += await revert_world_transitions_caused_by(tx, chat_id, turn.turn_id)
    for world_event_id in reversed(await plans.world_events_planned_by(tx, chat_id, turn.turn_id)):
        await plans.withdraw_world_event(tx, chat_id, world_event_id)
        done.world_events_reverted += 1
    memories = await memory_state.memories_from_turn(tx, chat_id, turn.turn_id)
    for memory in memories:
        await memory_state.retract_memory(tx, chat_id, memory.memory_id, reason=f"turn {turn.turn_id} taken back")
    done.memories_retracted += len(memories)
    made = await summaries.summaries_made_from_turn(tx, chat_id, turn.turn_id)
    for summary_id in made:
        await memory_state.retract_memory(tx, chat_id, summary_id, reason=f"made from turn {turn.turn_id}, taken back")
    done.memories_retracted += len(made)
    done.edges_restored += await restore_edges_caused_by(tx, chat_id, turn.turn_id)
    if turn.role == "narration":
        before = await world.clock_before_change(tx, chat_id, turn.turn_id)
        if before is not None:
            await world.set_clock(tx, chat_id, before, f"the time skip of turn {turn.turn_id} taken back")
    scenes = [turn.scene_id] if turn.scene_id else []
    closed = await world.scene_closed_by_line(tx, chat_id, turn.turn_id)
    if closed is not None:
        scenes.append(closed.scene_id)
    for scene_id in scenes:
        await _roll_back_close_of(tx, chat_id, scene_id, done)
    return done


async def _roll_back_close_of(tx: Transaction, chat_id: str, scene_id: int, done: TakenBack) -> None:
    if scene_id in done._scenes_rolled_back:
        return
    scene = await world.get_scene(tx, scene_id)
    if scene is not None and scene.kind == "main" and not scene.is_open:
        done.memories_retracted += len(await roll_back_scene_close(tx, chat_id, scene_id))
        done._scenes_rolled_back.add(scene_id)


async def roll_back_scene_close(tx: Transaction, chat_id: str, scene_id: int) -> list[int]:
    """Undo what a closed scene's summaries derived (see the module docstring); the retracted summary ids."""
    summary_ids = await memory_state.live_summary_ids(tx, scene_id)
    for memory_id in summary_ids:
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
    return summary_ids


async def withdraw_reply(tx: Transaction, chat_id: str, turn: Turn) -> list[int]:
    """Take `turn` out of the story with every other take of it; the ids withdrawn."""
    withdrawn = []
    for take in await turn_state.takes(tx, turn.turn_id):
        await turn_state.withdraw_turn(tx, chat_id, take.turn_id)
        withdrawn.append(take.turn_id)
    return withdrawn


async def take_back_from(
    tx: Transaction, chat_id: str, first: Turn, *, keep: Collection[int] = (), done: TakenBack | None = None
) -> TakenBack:
    """Every shown main-story turn from `first` on leaves the story, exactly (see the module docstring)."""
    done = done if done is not None else TakenBack()
    turns = await turn_state.shown_story_turns_from(tx, chat_id, first.turn_id)
    closed_by_lines = []
    for turn in reversed(turns):
        scene = await world.scene_closed_by_line(tx, chat_id, turn.turn_id)
        if scene is not None:
            closed_by_lines.append(scene)
        await undo_turn(tx, chat_id, turn, done)
        if turn.turn_id in keep:
            continue
        done.turn_ids += await withdraw_reply(tx, chat_id, turn)
        if turn.role == "user":
            done.lines.append(turn)
            for digest in await digest_state.digests_consumed_by(tx, chat_id, turn.turn_id):
                await digest_state.return_digest(tx, chat_id, digest.digest_id)
    for scene in await world.empty_main_scenes(tx, chat_id, {t.scene_id for t in turns if t.scene_id}):
        await world.withdraw_scene(tx, chat_id, scene.scene_id)
    for scene in sorted(closed_by_lines, key=lambda s: s.scene_id):
        if not (await world.require_scene(tx, scene.scene_id)).withdrawn:
            await reopen_scene_closed_by_line(tx, chat_id, scene, done)
    return done


async def reopen_scene_closed_by_line(tx: Transaction, chat_id: str, scene: world.Scene, done: TakenBack) -> None:
    """The scene a player's line closed in words opens again (what its close derived is undone
    first), with whoever came into the story while it was closed present in it."""
    await _roll_back_close_of(tx, chat_id, scene.scene_id, done)
    await world.reopen_scene(tx, chat_id, scene.scene_id)
    done.scenes_reopened.append(scene.scene_id)
    for player in [p.player_id for p in await players.story_players(tx, chat_id) if p.active]:
        await world.join_scene(tx, await world.require_scene(tx, scene.scene_id), player, player=True)
    for character_id in await world.cast_ids(tx, chat_id):
        await world.join_scene(tx, await world.require_scene(tx, scene.scene_id), character_id, player=False)
