"""The house rules, enforced: which layer may import what, and where SQL may live.

- `core/` knows nothing of Matrix: it imports neither nio nor the adapter.
- The adapter reaches the core only through its front door: `core.engine`, `core.errors` and
  what `core/__init__.py` exports on purpose.
- SQL lives in `core/state` and `core/eventlog` (and, for the adapter's own cache, in
  `adapter/matrix/store.py` and its schema, `store_schema.py`): nowhere else holds a SQL
  statement. Only the storage seam (`core/storage`) and those homes may import a database driver,
  and the adapter's cache, like the core, reaches its database through the seam.
- Read models read projections, whose causes are typed columns; only `core/eventlog` reads the
  raw event log.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import core

ROOT = Path(__file__).resolve().parents[2]
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|PRAGMA|REPLACE)\b", re.IGNORECASE)
SQL_HOMES = ("core/state/", "core/eventlog/", "adapter/matrix/store.py", "adapter/matrix/store_schema.py")
DRIVERS = {"sqlite3", "aiosqlite", "psycopg", "psycopg_pool", "psycopg_binary", "asyncpg"}


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_core_imports_neither_nio_nor_the_adapter() -> None:
    found = [
        f"{where(path, line)} imports {module}"
        for path in python_files("core")
        for line, module in imported_modules(path)
        if module.split(".")[0] in ("nio", "adapter")
    ]
    assert found == []


# The adapter's SQL home (its cache) speaks the storage seam, as the core's SQL homes do.
ADAPTER_SQL_HOME = {home for home in SQL_HOMES if home.startswith("adapter/")}
STORAGE_SEAM = {"core.storage", "core.storage.sql"}


def test_the_adapter_reaches_the_core_only_through_engine_errors_and_what_core_exports() -> None:
    exported = set(core.__all__)
    allowed_modules = {"core", "core.engine", "core.errors"}
    found = []
    for path in python_files("adapter"):
        sql_home = str(path.relative_to(ROOT)) in ADAPTER_SQL_HOME
        for line, module in imported_modules(path):
            if module.split(".")[0] != "core" or module in allowed_modules:
                continue
            if sql_home and (module in STORAGE_SEAM or module.rpartition(".")[0] in STORAGE_SEAM):
                continue
            parent, _, name = module.rpartition(".")
            if parent in allowed_modules and (parent != "core" or name in exported):
                continue
            found.append(f"{where(path, line)} imports {module}")
    assert found == []


def sql_strings(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value) and " " in node.value.strip():
            if re.search(r"\b(FROM|INTO|TABLE|SET|VALUES|WHERE|INDEX|journal_mode|user_version|synchronous)\b", node.value, re.IGNORECASE):
                yield node.lineno, node.value.strip().splitlines()[0][:60]


def test_sql_lives_only_in_state_eventlog_and_the_adapters_store() -> None:
    found = [
        f"{where(path, line)}: {text}"
        for path in python_files("core", "adapter")
        if not str(path.relative_to(ROOT)).startswith(SQL_HOMES)
        for line, text in sql_strings(path)
    ]
    assert found == []


def test_only_the_sql_homes_and_the_storage_seam_import_a_database_driver() -> None:
    found = [
        f"{where(path, line)} imports {module}"
        for path in python_files("core", "adapter")
        if not str(path.relative_to(ROOT)).startswith((*SQL_HOMES, "core/storage/"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in DRIVERS
    ]
    assert found == []


def test_read_models_read_projections_with_typed_causes_not_the_raw_log() -> None:
    """Only the event log itself (and the migrations that backfill a new projection) reads the
    `events` table; no read model digs causes out of payload JSON or parses them from text."""
    raw_log = re.compile(r"\bFROM\s+events\b|json_extract|substr\(", re.IGNORECASE)
    found = [
        where(path, line)
        for path in python_files("core/state", "core/services", "adapter")
        for line, text in enumerate(path.read_text().splitlines(), start=1)
        if raw_log.search(text)
    ]
    assert found == []


def test_nothing_in_the_repository_points_outside_it_and_code_cites_no_issue_numbers() -> None:
    """The repository explains itself: no pointer to a design file kept elsewhere, and code says
    why in words rather than by an issue number a newcomer cannot look up."""
    outside = re.compile(r"DESIGN\.md|MATRIX-NOTES|\.\./shared\b")
    issue = re.compile(r"\bissues? #?\d+\b", re.IGNORECASE)
    texts = [p for p in ROOT.rglob("*") if p.is_file() and p.suffix in (".py", ".md", ".mjs", ".toml", ".yaml", ".txt")]
    texts = [p for p in texts if not any(part in (".venv", "node_modules", ".git", ".pytest_cache") for part in p.parts)]
    texts = [p for p in texts if p != Path(__file__).resolve()]  # this test names what it looks for
    pointing_out = [str(p.relative_to(ROOT)) for p in texts if outside.search(p.read_text(errors="replace"))]
    citing = [
        where(path, line)
        for path in python_files("core", "adapter", "tests", "bench")
        if path != Path(__file__).resolve()
        for line, text in enumerate(path.read_text().splitlines(), start=1)
        if issue.search(text)
    ]
    assert pointing_out == [] and citing == []
