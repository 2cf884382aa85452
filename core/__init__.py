"""The rpbot core: the story engine, its state and its services, knowing nothing of Matrix.

An adapter drives the core through `core.engine` (the `Engine` and its typed results),
`core.errors` (every error the core raises on purpose) and the few helpers exported here.
They are imported on first use, so `import core.errors` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.eventlog.db import DatabaseStatus, database_status
    from core.eventlog.schema import Schema
    from core.eventlog.transfer import MoveReport, move_stories
    from core.keyed_locks import KeyedLocks
    from core.llm import LLMClient, make_llm_client
    from core.llm.roles import render_messages
    from core.services.opening_time import START_TIME_EXAMPLES, read_start_time
    from core.services.replies import ReplySettings
    from core.services.tokens import DEFAULT_CONTEXT_TOKENS
    from core.storage import SqliteConnection, StorageError, is_postgres_url, shown_location
    from core.timeparse import DURATION_EXAMPLES, TIME_EXAMPLES, parse_duration, parse_story_time

_HOMES = {
    "DatabaseStatus": "core.eventlog.db",
    "database_status": "core.eventlog.db",
    "KeyedLocks": "core.keyed_locks",
    "LLMClient": "core.llm",
    "make_llm_client": "core.llm",
    "render_messages": "core.llm.roles",
    "Schema": "core.eventlog.schema",
    "ReplySettings": "core.services.replies",
    "SqliteConnection": "core.storage",
    "StorageError": "core.storage",
    "is_postgres_url": "core.storage",
    "shown_location": "core.storage",
    "MoveReport": "core.eventlog.transfer",
    "move_stories": "core.eventlog.transfer",
    "DEFAULT_CONTEXT_TOKENS": "core.services.tokens",
    "START_TIME_EXAMPLES": "core.services.opening_time",
    "read_start_time": "core.services.opening_time",
    "DURATION_EXAMPLES": "core.timeparse",
    "TIME_EXAMPLES": "core.timeparse",
    "parse_duration": "core.timeparse",
    "parse_story_time": "core.timeparse",
}

__all__ = [
    "DEFAULT_CONTEXT_TOKENS",
    "DatabaseStatus",
    "DURATION_EXAMPLES",
    "START_TIME_EXAMPLES",
    "TIME_EXAMPLES",
    "database_status",
    "KeyedLocks",
    "LLMClient",
    "ReplySettings",
    "Schema",
    "SqliteConnection",
    "StorageError",
    "is_postgres_url",
    "shown_location",
    "MoveReport",
    "move_stories",
    "make_llm_client",
    "parse_duration",
    "parse_story_time",
    "read_start_time",
    "render_messages",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
