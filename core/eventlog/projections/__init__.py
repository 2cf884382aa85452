"""Projectors: how each event kind changes the read-model tables.

Importing this package registers every projector in `PROJECTORS` (kind -> projector).
"""

from core.eventlog.projections import lines, lore, memory, plot, turns, world  # noqa: F401  (registration)
from core.eventlog.projections.base import PROJECTORS, memory_id_range

__all__ = ["PROJECTORS", "memory_id_range"]
