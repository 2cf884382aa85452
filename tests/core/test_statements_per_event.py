"""What the engine's commonest work costs in statements (each a round trip on PostgreSQL): a turn and
a memory are written by their event, their row and their witnesses; a whole turn's statements are
held under a bound; a replay empties the projections at once on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from core.eventlog import append_and_apply
from core.eventlog.log import clear_projections
from core.eventlog.migrations import PROJECTION_TABLES
from core.llm import FakeLLM
from core.state import memory, turns, world
from core.storage import Connection, Dialect
from tests.core.conftest import PLAYER
from tests.core.story.conftest import HOST
from tests.support.postgres import RoundTrips, counting_round_trips
from tests.support.statements import counting_statements

TURN_STATEMENTS = 55


async def test_a_new_turn_costs_its_event_its_row_and_its_witnesses(db, chat):
    """Three statements; on PostgreSQL two round trips (the row and its witnesses go together)."""
    await world.open_scene(db, "chat-1", present=[PLAYER, "ada"])
    async with db.transaction() as tx:
        with counting_statements(tx.conn) as statements, round_trips(tx.conn) as trips:
            event = await append_and_apply(tx, "turn_recorded", {
                "chat_id": "chat-1", "role": "user", "speaker": PLAYER, "text": "Is the lamp lit?", "source_id": "$lamp",
            })
    assert event.ref is not None
    assert (sum(statements.values()), trips.count) == (3, 2 if db.dialect is Dialect.POSTGRESQL else 0)
    assert set(await turns.common_witnesses(db, [event.ref])) == {PLAYER, "ada", "bram"}


async def test_a_new_memory_costs_its_event_its_row_and_its_witnesses(db, chat):
    """Three statements; on PostgreSQL two round trips (the row and its witnesses go together)."""
    async with db.transaction() as tx:
        with counting_statements(tx.conn) as statements, round_trips(tx.conn) as trips:
            event = await append_and_apply(tx, "memory_recorded", {
                "chat_id": "chat-1", "text": "The lamp was lit at dusk.", "witnesses": [PLAYER, "ada"],
            })
    assert (sum(statements.values()), trips.count) == (3, 2 if db.dialect is Dialect.POSTGRESQL else 0)
    assert event.ref is not None and (await memory.require_memory(db, event.ref)).witnesses == tuple(sorted([PLAYER, "ada"]))


@contextmanager
def round_trips(conn: Connection) -> Iterator[RoundTrips]:
    """The round trips to PostgreSQL in the block (on SQLite: none counted)."""
    if conn.dialect is Dialect.POSTGRESQL:
        with counting_round_trips(conn) as counted:
            yield counted
    else:
        yield RoundTrips()


async def test_a_replay_clears_every_table_at_once_on_postgresql(db, chat):
    """PostgreSQL empties the projections in one TRUNCATE: deleting row by row would check every
    deleted row's references and take each memory out of the full-text index one at a time."""
    await append_and_apply(db, "memory_recorded", {"chat_id": "chat-1", "text": "The lamp was lit.", "witnesses": ["ada"]})
    async with db.transaction() as tx:
        with counting_statements(tx.conn) as statements:
            await clear_projections(tx)
        assert [row[0] for row in await tx.conn.fetch_all("SELECT count(*) FROM memories_fts")] == [0]
    expected = 1 if db.dialect is Dialect.POSTGRESQL else len(PROJECTION_TABLES)
    assert sum(statements.values()) == expected


async def test_a_turn_sends_a_bounded_number_of_statements(open_engine):
    """A player's line answered by the host, with the work after it: each statement is a round trip
    on PostgreSQL, so their number is held down (the prompt's reads, the line's and the reply's
    writes). A change that needs more raises the bound knowingly."""
    engine = await open_engine(FakeLLM(routes={
        "narrate": "*Wren nods.* The lamp is lit.", "lifecycle": {}, "relationship": {"affinity": 0, "trust": 0, "why": ""},
    }))
    chat = (await engine.create_chat(owner=PLAYER, host=HOST)).chat_id
    for n in range(3):
        [_ async for _ in engine.post_turn(chat, f"Is the lamp lit, Wren? ({n})", f"$line{n}")]
    await engine.pipeline._settle(chat)
    with counting_statements(engine.db.writer, engine.db.reader) as statements:
        [_ async for _ in engine.post_turn(chat, "And the harbour lights?", "$harbour")]
        await engine.pipeline._settle(chat)
    # 60 before the turn's row was one INSERT and the window's count rode in its query; 53 since.
    assert sum(statements.values()) <= TURN_STATEMENTS, dict(statements)
