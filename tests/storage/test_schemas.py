"""One migration mechanism on both backends: the version kept in a table, SQLite files carried
over from `PRAGMA user_version`, a new PostgreSQL database started from its baseline with the very
tables and columns SQLite's steps build."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing

import pytest

from core.errors import SchemaVersionError
from core.eventlog import open_database
from core.eventlog.migrations import ENGINE_SCHEMA, latest_version
from core.storage import Connection, Dialect, open_connection, open_sqlite


async def columns(conn: Connection) -> dict[str, list[str]]:
    """Every table's columns, in order (the full-text index's own tables left out)."""
    if conn.dialect is Dialect.SQLITE:
        tables = [row[0] for row in await conn.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'memories_fts%'")]
        return {table: [row["name"] for row in await conn.fetch_all(f"PRAGMA table_info({table})")] for table in tables}
    rows = await conn.fetch_all(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name NOT LIKE 'memories_fts%'
           ORDER BY table_name, ordinal_position""")
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], []).append(row["column_name"])
    return found


async def test_a_new_postgres_database_has_the_tables_and_columns_sqlites_steps_build(tmp_path, postgres_url):
    sqlite_db = await open_database(tmp_path / "engine.sqlite3")
    postgres_db = await open_database(postgres_url)
    try:
        assert postgres_db.dialect is Dialect.POSTGRESQL
        assert await ENGINE_SCHEMA.version(postgres_db.writer) == latest_version()
        assert await columns(postgres_db.reader) == await columns(sqlite_db.reader)
    finally:
        await sqlite_db.close()
        await postgres_db.close()


async def test_an_older_sqlite_file_carries_its_version_over_from_the_pragma(tmp_path):
    path = tmp_path / "engine.sqlite3"
    async with await open_sqlite(path) as conn:
        await ENGINE_SCHEMA.upgrade(conn, to=5)
        await conn.execute("DROP TABLE schema_versions")  # as an rpbot from before the table wrote it
    db = await open_database(path)
    try:
        assert await ENGINE_SCHEMA.version(db.reader) == latest_version()
        assert [tuple(row) for row in await db.reader.fetch_all("SELECT * FROM schema_versions")] == [("engine", latest_version())]
    finally:
        await db.close()
    with closing(sqlite3.connect(path)) as conn:  # what an older rpbot reads: it refuses a file moved on
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_version()


async def test_a_postgres_database_from_a_newer_rpbot_is_refused(postgres_url):
    async with await open_connection(postgres_url) as conn:
        await ENGINE_SCHEMA.upgrade(conn)
        await conn.execute("UPDATE schema_versions SET version = version + 1 WHERE name = 'engine'")
    with pytest.raises(SchemaVersionError, match="PostgreSQL"):
        await open_database(postgres_url)


async def test_processes_starting_at_once_on_one_postgres_database_migrate_it_once(postgres_url):
    opened = await asyncio.gather(*(open_database(postgres_url) for _ in range(3)))
    try:
        for db in opened:
            assert await ENGINE_SCHEMA.version(db.reader) == latest_version()
    finally:
        for db in opened:
            await db.close()


async def test_text_sorts_as_on_sqlite_in_a_postgres_database_of_another_collation(postgres_server):
    """A database made with an English collation (ICU's `en-US`) still sorts our text by code point."""
    name = postgres_server.create_database(prefix="english")
    postgres_server.drop_database(name)
    postgres_server.sql(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    try:
        db = await open_database(postgres_server.url(name))
        try:
            async with db.transaction() as tx:
                await tx.conn.execute_many(
                    "INSERT INTO personas (owner, name, description) VALUES (?, ?, '')",
                    [("@b:hs", "bram"), ("@c:hs", "Cora"), ("@a:hs", "ada"), ("@e:hs", "Émile")],
                )
            names = [row[0] for row in await db.reader.fetch_all("SELECT name FROM personas ORDER BY name")]
            english = [row[0] for row in await db.reader.fetch_all("SELECT name COLLATE \"default\" FROM personas ORDER BY 1")]
        finally:
            await db.close()
        assert names == sorted(names) == ["Cora", "ada", "bram", "Émile"]
        assert english == ["ada", "bram", "Cora", "Émile"]  # what the database's own collation would have done
    finally:
        postgres_server.drop_database(name)


async def test_a_test_gets_clean_engine_databases_on_both_backends(engine_location):
    first, second = engine_location("a.sqlite3"), engine_location("b.sqlite3")
    assert first != second
    for location in (first, second):
        db = await open_database(location)
        try:
            assert await ENGINE_SCHEMA.version(db.reader) == latest_version()
            assert await db.reader.fetch_all("SELECT * FROM events") == []
        finally:
            await db.close()


async def test_a_postgres_database_given_back_comes_back_empty(engine_databases):
    url = engine_databases.take()
    for _ in range(2):
        async with await open_connection(url) as conn:
            assert await conn.fetch_all("SELECT * FROM events") == []
            [[seq]] = await conn.fetch_all("INSERT INTO events (kind, payload, recorded_at) VALUES ('x', '{}', 0) RETURNING seq")
            assert seq == 1
        engine_databases.give_back(url)
        assert engine_databases.take() == url


async def test_every_reference_to_a_turn_is_found_through_an_index(engine_location):
    """Deleting a turn (a replay clears the turns, one by one on SQLite) looks up every row that
    references it: without an index on a referencing column, each lookup reads that table whole,
    and clearing 60,000 turns took four and a half minutes."""
    db = await open_database(engine_location("engine.sqlite3"))
    try:
        conn = db.writer
        for child, column in (("turns", "superseded_by"), ("turn_witnesses", "turn_id"), ("memories", "source_turn_id")):
            lookup = f"SELECT 1 FROM {child} WHERE {column} = 7"
            if conn.dialect is Dialect.SQLITE:
                plan = " ".join(row["detail"] for row in await conn.fetch_all(f"EXPLAIN QUERY PLAN {lookup}"))
                assert plan.startswith("SEARCH"), f"{child}.{column}: {plan}"
            else:
                async with conn.transaction():  # the setting ends with it
                    await conn.execute("SET LOCAL enable_seqscan = off")
                    plan = " ".join(row[0] for row in await conn.fetch_all(f"EXPLAIN {lookup}"))
                assert "Seq Scan" not in plan, f"{child}.{column}: {plan}"
    finally:
        await db.close()
