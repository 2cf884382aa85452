"""The event-sourced store of the engine: schema, event kinds, the log, and replay.

Every state change is an event appended to `events` and applied to the read-model
tables (projections) in the same transaction; `replay` rebuilds the projections
from the log.  Read models live in core/state.
"""

from core.eventlog.db import Database, Readable, Transaction, Writable, open_database, read_connection, writing
from core.eventlog.events import EVENT_MODELS, LEGACY_PLAYER, EventPayload, parse_payload
from core.eventlog.log import (
    Event,
    append_and_apply,
    append_event,
    apply_event,
    clear_projections,
    iter_events,
    replay,
)

__all__ = [
    "EVENT_MODELS",
    "LEGACY_PLAYER",
    "Database",
    "Event",
    "EventPayload",
    "Readable",
    "Transaction",
    "Writable",
    "append_and_apply",
    "append_event",
    "apply_event",
    "clear_projections",
    "iter_events",
    "open_database",
    "parse_payload",
    "read_connection",
    "replay",
    "writing",
]
