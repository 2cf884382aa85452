"""The storage seam behaves alike on SQLite and PostgreSQL: parameters, rows, transactions, errors."""

from __future__ import annotations

import asyncio

import pytest

from core.storage import Dialect, IntegrityError, StorageError, open_connection
from core.storage.paramstyle import numbered
from tests.support.postgres import counting_round_trips


async def _table(conn) -> None:
    await conn.execute("CREATE TABLE notes (note_id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE, flag INTEGER NOT NULL)")


async def test_rows_are_read_by_name_and_by_index_with_either_parameter_style(database_location):
    async with await open_connection(database_location) as conn:
        await _table(conn)
        assert await conn.execute("INSERT INTO notes VALUES (?, ?, ?)", (1, "a lamp", True)) == 1
        await conn.execute("INSERT INTO notes VALUES (:id, :text, :flag)", {"id": 2, "text": "a buoy", "flag": False})
        await conn.execute_many("INSERT INTO notes VALUES (?, ?, 0)", [(3, "a gull"), (4, "a tide")])
        rows = await conn.fetch_all(
            "SELECT note_id, text, flag FROM notes WHERE note_id >= :low OR text = :low_text ORDER BY note_id",
            {"low": 2, "low_text": "a lamp"},
        )
        assert [tuple(row) for row in rows] == [(1, "a lamp", 1), (2, "a buoy", 0), (3, "a gull", 0), (4, "a tide", 0)]
        first = rows[0]
        assert (first["note_id"], first["text"], first[2]) == (1, "a lamp", 1)
        assert first.keys() == ["note_id", "text", "flag"] and dict(first) == {"note_id": 1, "text": "a lamp", "flag": 1}
        literal = await conn.fetch_one("SELECT 'what? :not_a_name' AS text, note_id FROM notes WHERE note_id = ?", (4,))
        assert literal is not None and tuple(literal) == ("what? :not_a_name", 4)
        assert await conn.fetch_one("SELECT * FROM notes WHERE note_id = ?", (99,)) is None
        assert await conn.execute("UPDATE notes SET flag = 1 WHERE note_id > ?", (1,)) == 3


async def test_a_transaction_commits_or_leaves_nothing(database_location):
    async with await open_connection(database_location) as conn:
        await _table(conn)
        async with conn.transaction():
            await conn.execute("INSERT INTO notes VALUES (1, 'kept', 0)")
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.execute("INSERT INTO notes VALUES (2, 'dropped', 0)")
                raise RuntimeError("changed my mind")
        assert not conn.in_transaction

        async def cancelled_inside() -> None:
            async with conn.transaction():
                await conn.execute("INSERT INTO notes VALUES (3, 'cancelled', 0)")
                await asyncio.sleep(10)

        task = asyncio.create_task(cancelled_inside())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not conn.in_transaction
        assert [row[0] for row in await conn.fetch_all("SELECT text FROM notes")] == ["kept"]


async def test_the_backends_errors_reach_callers_as_storage_errors(database_location):
    async with await open_connection(database_location) as conn:
        await _table(conn)
        await conn.execute("INSERT INTO notes VALUES (1, 'once', 0)")
        with pytest.raises(IntegrityError):
            await conn.execute("INSERT INTO notes VALUES (2, 'once', 0)")
        with pytest.raises(StorageError):
            await conn.fetch_all("SELECT nothing FROM nowhere")
        with pytest.raises(IntegrityError):
            async with conn.transaction():
                await conn.execute("INSERT INTO notes VALUES (3, 'twice', 0)")
                await conn.execute("INSERT INTO notes VALUES (4, 'twice', 0)")
        assert [row[0] for row in await conn.fetch_all("SELECT text FROM notes")] == ["once"]


async def test_a_read_only_connection_refuses_writes(database_location):
    async with await open_connection(database_location) as writer:
        await _table(writer)
        async with await open_connection(database_location, read_only=True) as reader:
            with pytest.raises(StorageError):
                await reader.execute("INSERT INTO notes VALUES (1, 'no', 0)")
            assert await reader.fetch_all("SELECT * FROM notes") == []


async def test_postgres_reads_back_what_sqlite_does(postgres_url):
    async with await open_connection(postgres_url) as conn:
        assert conn.dialect is Dialect.POSTGRESQL
        row = await conn.fetch_one(
            "SELECT json_agg(x) AS list, 1.5::numeric / 3 AS ratio, sum(x) AS total, ?::bigint AS flag, 'a' || ? AS text"
            " FROM (VALUES (CAST(1 AS BIGINT)), (2)) v(x)",
            (True, "b"),
        )
        assert row is not None and tuple(row) == ("[1, 2]", 0.5, 3, 1, "ab")
        assert type(row["total"]) is int


async def test_postgres_writers_in_two_connections_take_turns(postgres_url):
    """Two processes' write transactions never overlap: the second BEGIN waits for the first COMMIT."""
    async with await open_connection(postgres_url) as first, await open_connection(postgres_url) as second:
        await _table(first)
        order: list[str] = []
        inside = asyncio.Event()

        async def first_writer() -> None:
            async with first.transaction():
                inside.set()
                await first.execute("INSERT INTO notes VALUES (1, 'first', 0)")
                await asyncio.sleep(0.3)
                order.append("first commits")

        async def second_writer() -> None:
            await inside.wait()
            async with second.transaction():
                order.append("second is in")
                [[count]] = await second.fetch_all("SELECT count(*) FROM notes")
                await second.execute("INSERT INTO notes VALUES (2, ?, 0)", (f"second saw {count}",))

        await asyncio.gather(first_writer(), second_writer())
        assert order == ["first commits", "second is in"]
        assert [row[0] for row in await first.fetch_all("SELECT text FROM notes ORDER BY note_id")] == ["first", "second saw 1"]


def test_our_parameter_style_becomes_numbered_parameters_and_none_a_null():
    named = numbered("SELECT :a, :b, :a, '?:x', \"col:y\", x::text -- :c ?\nFROM t WHERE y = :b", {"b": 2, "a": 1, "unused": 3})
    assert named.sql == "SELECT $1, $2, $1, '?:x', \"col:y\", x::text -- :c ?\nFROM t WHERE y = $2" and named.values == [1, 2]
    positional = numbered("SELECT ?, ? FROM t WHERE z = 'it''s ?'", (1, 2))
    assert positional.sql == "SELECT $1, $2 FROM t WHERE z = 'it''s ?'" and positional.values == [1, 2]
    with_none = numbered("SELECT * FROM t WHERE (:before IS NULL OR seq < :before) AND kind = :kind", {"before": None, "kind": "k"})
    assert with_none.sql == "SELECT * FROM t WHERE (NULL IS NULL OR seq < NULL) AND kind = $1" and with_none.values == ["k"]
    assert numbered("INSERT INTO t VALUES (?, ?, ?)", (None, 1, None)).sql == "INSERT INTO t VALUES (NULL, $1, NULL)"
    with pytest.raises(ValueError):
        numbered("SELECT ?, :a", {"a": 1})


async def test_an_optional_filter_reads_alike_given_or_not(database_location):
    async with await open_connection(database_location) as conn:
        await _table(conn)
        await conn.execute_many("INSERT INTO notes VALUES (?, ?, ?)", [(1, "a", 0), (2, "b", 1), (3, "c", 1)])
        optional = "SELECT note_id FROM notes WHERE (:flag IS NULL OR flag = :flag) AND (:after IS NULL OR note_id > :after)"
        assert [r[0] for r in await conn.fetch_all(optional, {"flag": None, "after": None})] == [1, 2, 3]
        assert [r[0] for r in await conn.fetch_all(optional, {"flag": 1, "after": 2})] == [3]
        # A text filter too: nothing around `:text IS NULL` says its type but the value's own.
        by_text = "SELECT note_id FROM notes WHERE (:text IS NULL OR text = :text) ORDER BY note_id"
        assert [r[0] for r in await conn.fetch_all(by_text, {"text": "b"})] == [2]
        assert [r[0] for r in await conn.fetch_all(by_text, {"text": None})] == [1, 2, 3]


async def test_a_postgres_write_transaction_costs_two_round_trips(postgres_url):
    """BEGIN and the write lock go in one round trip, COMMIT in another: each turn has two transactions."""
    async with await open_connection(postgres_url) as conn:
        await _table(conn)
        with counting_round_trips(conn) as empty:
            async with conn.transaction():
                pass
        with counting_round_trips(conn) as one_write:
            async with conn.transaction():
                await conn.execute("INSERT INTO notes VALUES (1, 'a lamp', 0)")
        assert (empty.count, one_write.count) == (2, 3)


async def test_a_postgres_writer_cancelled_while_it_waits_for_the_lock_leaves_nothing_open(postgres_url):
    async with await open_connection(postgres_url) as first, await open_connection(postgres_url) as second:
        await _table(first)
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold_the_lock() -> None:
            async with first.transaction():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold_the_lock())
        await holding.wait()

        async def wait_for_the_lock() -> None:
            async with second.transaction():
                await second.execute("INSERT INTO notes VALUES (1, 'never', 0)")

        waiter = asyncio.create_task(wait_for_the_lock())
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not second.in_transaction
        release.set()
        await holder
        async with second.transaction():
            await second.execute("INSERT INTO notes VALUES (2, 'after', 0)")
        assert [row[0] for row in await first.fetch_all("SELECT text FROM notes")] == ["after"]


async def test_statements_run_together_in_order_and_each_gives_its_rows(database_location):
    async with await open_connection(database_location) as conn:
        await _table(conn)
        async with conn.transaction():
            inserted, counted, nothing = await conn.fetch_together([
                ("INSERT INTO notes VALUES (?, ?, 0) RETURNING note_id", (1, "a lamp")),
                ("SELECT count(*) FROM notes WHERE text = :text", {"text": "a lamp"}),
                ("UPDATE notes SET flag = 1 WHERE note_id = ?", (99,)),
            ])
        assert ([tuple(row) for row in inserted], [tuple(row) for row in counted], nothing) == ([(1,)], [(1,)], [])
        with pytest.raises(IntegrityError):
            async with conn.transaction():
                await conn.fetch_together([
                    ("INSERT INTO notes VALUES (2, 'a buoy', 0)", ()),
                    ("INSERT INTO notes VALUES (3, 'a lamp', 0)", ()),
                    ("INSERT INTO notes VALUES (4, 'a gull', 0)", ()),
                ])
        assert not conn.in_transaction
        assert [row[0] for row in await conn.fetch_all("SELECT text FROM notes")] == ["a lamp"]


async def test_postgres_runs_statements_together_in_one_round_trip(postgres_url):
    async with await open_connection(postgres_url) as conn:
        await _table(conn)
        with counting_round_trips(conn) as together:
            await conn.fetch_together([(f"INSERT INTO notes VALUES ({n}, 'note {n}', 0)", ()) for n in range(3)])
        assert together.count == 1
        assert [row[0] for row in await conn.fetch_all("SELECT count(*) FROM notes")] == [3]
