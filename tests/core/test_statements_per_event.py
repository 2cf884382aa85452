"""What recording the log's commonest events costs in statements (each a round trip on PostgreSQL):
a turn and a memory are written by their event, their row and their witnesses, on either backend."""

from __future__ import annotations

from core.eventlog import append_and_apply
from core.eventlog.log import clear_projections
from core.eventlog.migrations import PROJECTION_TABLES
from core.storage import Dialect
from core.state import world
from tests.core.conftest import PLAYER
from tests.support.statements import counting_statements


async def test_a_new_turn_costs_its_event_its_row_and_its_witnesses(db, chat):
    await world.open_scene(db, "chat-1", present=[PLAYER, "ada"])
    async with db.transaction() as tx:
        with counting_statements(tx.conn) as statements:
            event = await append_and_apply(tx, "turn_recorded", {
                "chat_id": "chat-1", "role": "user", "speaker": PLAYER, "text": "Is the lamp lit?", "source_id": "$lamp",
            })
    assert event.ref is not None
    assert sum(statements.values()) == 3


async def test_a_new_memory_costs_its_event_its_row_and_its_witnesses(db, chat):
    async with db.transaction() as tx:
        with counting_statements(tx.conn) as statements:
            await append_and_apply(tx, "memory_recorded", {
                "chat_id": "chat-1", "text": "The lamp was lit at dusk.", "witnesses": [PLAYER, "ada"],
            })
    assert sum(statements.values()) == 3



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
