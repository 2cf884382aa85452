"""What our SQL needs beyond the common ground, proven on both backends: JSON lists in and out,
JSON fields, upserts, RETURNING, 64-bit packed ids, the smaller and larger of two values."""

from __future__ import annotations

import json

from core.storage import open_connection
from core.storage import sql as dialect_sql


async def test_json_lists_go_in_as_text_and_come_out_as_text(database_location):
    async with await open_connection(database_location) as conn:
        d = conn.dialect
        await conn.execute("CREATE TABLE witnesses (memory_id BIGINT NOT NULL, witness TEXT NOT NULL, PRIMARY KEY (memory_id, witness))")
        await conn.execute(
            f"INSERT INTO witnesses (memory_id, witness) SELECT ?, j.value FROM {dialect_sql.json_items(d, '?', 'j')}",
            (7, json.dumps(["ada", "you", "Zoë"])),
        )
        row = await conn.fetch_one(
            f"SELECT {dialect_sql.json_list_agg(d, 'witness')} AS witnesses FROM witnesses WHERE memory_id = ?", (7,))
        assert row is not None and sorted(json.loads(row["witnesses"])) == ["Zoë", "ada", "you"]
        empty = await conn.fetch_one(
            f"SELECT (SELECT {dialect_sql.json_list_agg(d, 'witness')} FROM witnesses WHERE memory_id = 8) AS witnesses")
        assert empty is not None and json.loads(empty["witnesses"]) == []
        some = await conn.fetch_all(
            f"SELECT p.value FROM {dialect_sql.json_items(d, ':present', 'p')} WHERE p.value != :who ORDER BY p.value",
            {"present": '["ada", "you", "bram"]', "who": "you"})
        assert [row[0] for row in some] == ["ada", "bram"]
        # In the list's order, and compared with numbers once cast.
        ordered = await conn.fetch_all(
            f"SELECT p.value FROM {dialect_sql.json_items(d, '?', 'p')} ORDER BY p.key", ('["zoe", "ada", "mia"]',))
        assert [row[0] for row in ordered] == ["zoe", "ada", "mia"]
        numbers = await conn.fetch_all(
            f"SELECT memory_id FROM witnesses WHERE memory_id IN"
            f" (SELECT CAST(j.value AS BIGINT) FROM {dialect_sql.json_items(d, '?', 'j')})", ("[7, 8]",))
        assert {row[0] for row in numbers} == {7}


async def test_json_fields_are_read_as_text_and_as_integers(database_location):
    async with await open_connection(database_location) as conn:
        d = conn.dialect
        await conn.execute("CREATE TABLE events (seq BIGINT PRIMARY KEY, payload TEXT NOT NULL)")
        await conn.execute("INSERT INTO events VALUES (1, ?)", (json.dumps({"reason": "turn:4; a talk", "turn_id": 4}),))
        row = await conn.fetch_one(
            f"""SELECT {dialect_sql.json_text(d, 'payload', 'reason')} AS reason, {dialect_sql.json_integer(d, 'payload', 'turn_id')} + 1
                       AS next, {dialect_sql.json_text(d, 'payload', 'missing')} AS missing FROM events""")
        assert row is not None and tuple(row) == ("turn:4; a talk", 5, None)


async def test_upserts_returning_and_packed_ids_behave_alike(database_location):
    async with await open_connection(database_location) as conn:
        d = conn.dialect
        await conn.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        bump = ("INSERT INTO counters (name, value) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value")
        assert [(await conn.fetch_all(bump, ("mx",)))[0][0] for _ in range(3)] == [1, 2, 3]
        raise_to = (f"INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name)"
                    f" DO UPDATE SET value = {dialect_sql.greatest(d, 'counters.value', 'excluded.value')}")
        await conn.execute(raise_to, ("mx", 2))
        await conn.execute(raise_to, ("other", 5))
        assert await conn.execute("INSERT INTO counters (name, value) VALUES ('mx', 0) ON CONFLICT DO NOTHING") == 0
        assert [tuple(r) for r in await conn.fetch_all("SELECT * FROM counters ORDER BY name")] == [("mx", 3), ("other", 5)]
        # A memory id packs the chat number above 32 bits: ids far past 2^31 (here about 2^62) fit.
        await conn.execute("CREATE TABLE memories (memory_id BIGINT PRIMARY KEY, chat_num BIGINT NOT NULL)")
        chat_num = 2**30 + 5
        insert_next = """INSERT INTO memories (memory_id, chat_num)
            SELECT coalesce((SELECT max(memory_id) FROM memories
                             WHERE memory_id BETWEEN :chat_num << 32 AND ((:chat_num + 1) << 32) - 1),
                            :chat_num << 32) + 1, :chat_num
            RETURNING memory_id"""
        ids = [(await conn.fetch_all(insert_next, {"chat_num": chat_num}))[0][0] for _ in range(2)]
        assert ids == [(chat_num << 32) + 1, (chat_num << 32) + 2]
        assert (await conn.fetch_one(f"SELECT {dialect_sql.least(d, '3', '2')}"))[0] == 2


async def test_a_table_is_defined_once_for_both_backends(database_location):
    async with await open_connection(database_location) as conn:
        d = conn.dialect
        await conn.execute(dialect_sql.table_definition(d, """CREATE TABLE cast_of (
            chat_id TEXT NOT NULL, character_id TEXT NOT NULL, joined_seq BIGINT NOT NULL,
            PRIMARY KEY (chat_id, character_id)) WITHOUT ROWID"""))
        await conn.execute(dialect_sql.table_definition(d, "ALTER TABLE cast_of ADD COLUMN note TEXT"))
        await conn.execute_many("INSERT INTO cast_of VALUES ('c', ?, ?, NULL)", [("b", 2**40), ("C", 1), ("a", 3)])
        rows = await conn.fetch_all("SELECT character_id, joined_seq FROM cast_of ORDER BY character_id")
        assert [tuple(row) for row in rows] == [("C", 1), ("a", 3), ("b", 2**40)]  # by code point, as SQLite


async def test_like_ignores_case_and_a_bare_offset_keeps_every_row(database_location):
    async with await open_connection(database_location) as conn:
        d = conn.dialect
        await conn.execute("CREATE TABLE names (name TEXT NOT NULL)")
        await conn.execute_many("INSERT INTO names VALUES (?)", [("Ada",), ("bram",), ("ADAM",)])
        rows = await conn.fetch_all(
            f"SELECT name FROM names WHERE {dialect_sql.like_ignoring_case(d, 'name', '?')} ORDER BY name", ("ad%",))
        assert [r[0] for r in rows] == ["ADAM", "Ada"]
        rest = await conn.fetch_all(f"SELECT name FROM names ORDER BY name {dialect_sql.all_rows(d)} OFFSET 1")
        assert [r[0] for r in rest] == ["Ada", "bram"]
