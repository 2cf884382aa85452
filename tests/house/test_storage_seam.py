"""The engine speaks to its database only through the storage seam, in SQL both backends run.

The engine's SQL homes (core/state, core/eventlog: read models, the log, its projections) import
no database driver and call nothing of one (aiosqlite's `execute_fetchall`); SQLite's own
spellings (JSON functions, `INSERT OR ...`, `group_concat`, an OFFSET without a limit) appear only
in `core/storage/sql.py`, which gives each its PostgreSQL form, and in the migration steps that
ran before the PostgreSQL baseline (they run on SQLite only).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.house.test_layering import DRIVERS, ROOT, imported_modules, python_files, where

ENGINE_SQL_HOMES = ("core/state", "core/eventlog", "core/services")
SQLITE_ONLY = re.compile(
    r"\bjson_(each|extract|group_array|group_object|array_length)\s*\(|\bgroup_concat\s*\(|\b(INSERT|UPDATE|REPLACE)\s+OR\s+"
    r"(IGNORE|REPLACE|ABORT|FAIL|ROLLBACK)\b|\bLIMIT\s+-1\b|\bGLOB\b|\bexecute_fetchall\b",
    re.IGNORECASE,
)
# Steps up to the PostgreSQL baseline ran on SQLite alone; every later step is written for both.
SQLITE_ONLY_ALLOWED = {"core/eventlog/migrations.py"}


def test_the_engine_imports_no_database_driver() -> None:
    found = [
        f"{where(path, line)} imports {module}"
        for path in python_files(*ENGINE_SQL_HOMES)
        for line, module in imported_modules(path)
        if module.split(".")[0] in DRIVERS
    ]
    assert found == []


def test_the_engines_sql_has_no_sqlite_only_spelling_outside_the_dialect_functions() -> None:
    found = [
        where(path, number)
        for path in python_files(*ENGINE_SQL_HOMES)
        if str(path.relative_to(ROOT)) not in SQLITE_ONLY_ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if SQLITE_ONLY.search(line)
    ]
    assert found == []


def test_later_migration_steps_are_written_for_both_backends() -> None:
    """After the PostgreSQL baseline's version, a step uses no SQLite-only spelling either."""
    from core.eventlog.postgres_baseline import VERSION

    text = Path(ROOT / "core/eventlog/migrations.py").read_text()
    steps = re.split(r"\n(?=@migration\()", text)[1:]  # the text of each step, in order
    found = [
        f"step {number}: {match.group(0)}"
        for number, step in enumerate(steps, start=1)
        if number > VERSION
        for match in SQLITE_ONLY.finditer(step)
    ]
    assert found == []
