"""SQL that differs between SQLite and PostgreSQL, in small named functions of the dialect.

The SQL homes write one statement for both backends and call these where the two disagree;
each returns a fragment of SQL (never runs anything). Everything else our SQL uses is common to
both: `INSERT ... ON CONFLICT (key) DO NOTHING / DO UPDATE SET col = excluded.col` (in place of
SQLite's `INSERT OR IGNORE / OR REPLACE`), `RETURNING`, `<<` on 64-bit integers, window
functions, `WITH ... AS MATERIALIZED`, `coalesce`, `CAST(x AS BIGINT)`, `NULLS FIRST / LAST`.

Where the two differ in meaning, not only in spelling, the function says so: PostgreSQL's
`greatest` ignores NULLs where SQLite's two-argument `max` returns NULL; `LIKE` is
case-insensitive (for ASCII) on SQLite and case-sensitive on PostgreSQL (`like_ignoring_case`).
"""

from __future__ import annotations

import re

from core.storage.base import Dialect


def json_list_agg(dialect: Dialect, expression: str) -> str:
    """An aggregate: the group's values as a JSON list (text; '[]' for none)."""
    if dialect is Dialect.SQLITE:
        return f"json_group_array({expression})"
    return f"coalesce(CAST(json_agg({expression}) AS TEXT), '[]')"


def json_items(dialect: Dialect, json_list: str, alias: str) -> str:
    """A FROM item: the items of a JSON list held as text, one row each, read as `alias.value` (text:
    cast it to compare with numbers) and `alias.key` (its place in the list, to order by)."""
    if dialect is Dialect.SQLITE:
        return f"json_each({json_list}) AS {alias}"
    return f"jsonb_array_elements_text(CAST({json_list} AS jsonb)) WITH ORDINALITY AS {alias}(value, key)"


def json_text(dialect: Dialect, document: str, key: str) -> str:
    """A text field of a JSON object held as text (NULL when absent)."""
    if dialect is Dialect.SQLITE:
        return f"json_extract({document}, '$.{key}')"
    return f"(CAST({document} AS jsonb) ->> '{key}')"


def json_integer(dialect: Dialect, document: str, key: str) -> str:
    """An integer field of a JSON object held as text (NULL when absent)."""
    if dialect is Dialect.SQLITE:
        return f"json_extract({document}, '$.{key}')"
    return f"CAST(CAST({document} AS jsonb) ->> '{key}' AS BIGINT)"


def greatest(dialect: Dialect, *expressions: str) -> str:
    """The largest of the values (for values that are never NULL: see the module's note)."""
    name = "max" if dialect is Dialect.SQLITE else "greatest"
    return f"{name}({', '.join(expressions)})"


def least(dialect: Dialect, *expressions: str) -> str:
    """The smallest of the values (for values that are never NULL)."""
    name = "min" if dialect is Dialect.SQLITE else "least"
    return f"{name}({', '.join(expressions)})"


def like_ignoring_case(dialect: Dialect, value: str, pattern: str) -> str:
    """`value LIKE pattern`, ignoring the case of ASCII letters on both backends."""
    return f"{value} LIKE {pattern}" if dialect is Dialect.SQLITE else f"{value} ILIKE {pattern}"


def all_rows(dialect: Dialect) -> str:
    """A LIMIT that keeps every row (for an OFFSET without a limit)."""
    return "LIMIT -1" if dialect is Dialect.SQLITE else "LIMIT ALL"


def identity_follows_copied_rows(dialect: Dialect, table: str, column: str) -> str | None:
    """The statement that makes new rows' ids continue after rows copied in with their own ids
    (None: SQLite's AUTOINCREMENT follows by itself)."""
    if dialect is Dialect.SQLITE:
        return None
    return f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max({column}) FROM {table}))"


def table_definition(dialect: Dialect, statement: str) -> str:
    """A `CREATE TABLE` or `ALTER TABLE ... ADD COLUMN` written once for both backends: on
    PostgreSQL its TEXT columns compare and sort by code point, as SQLite's BINARY collation does
    (the "C" collation), and SQLite's `WITHOUT ROWID` is dropped (every PostgreSQL table is
    stored apart from its primary key's index). Write `BIGINT` for ids and sequence numbers: SQLite
    reads it as INTEGER, PostgreSQL's INTEGER would stop at 2^31."""
    if dialect is Dialect.SQLITE:
        return statement
    statement = re.sub(r"\)\s*WITHOUT ROWID\s*$", ")", statement)
    return re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', statement)
