"""Which room version the bot creates rooms in, and what that version means for power levels.

A homeserver advertises its room versions in `/capabilities` (`m.room_versions`: a default and
each version's stability). Restricted joins (Space members join without an invite) need room
version 8 or later. The bot takes the server's default when it is stable and allows restricted
joins, otherwise the highest stable version that does; a server that offers none gets a clear
error before anything is made. From room version 12 on (MSC4289) a room's creators hold
unlimited power and must not be listed in `m.room.power_levels` `users`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapter.errors import AdapterError

RESTRICTED_JOINS_SINCE = 8
CREATORS_UNLISTED_SINCE = 12
CAPABILITIES_PATH = "/_matrix/client/v3/capabilities"


class NoUsableRoomVersion(AdapterError, RuntimeError):
    """The homeserver offers no stable room version with restricted joins."""

    player_summary = "The homeserver offers no room version I can make rooms in"


def _number(version: str) -> int | None:
    return int(version) if version.isdigit() else None


def stable_versions(capabilities: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(the default version, the stable versions) from a `/capabilities` response body.

    A server that leaves `m.room_versions` out is read as the spec says: default "1", only "1" stable.
    """
    room_versions = capabilities.get("capabilities", {}).get("m.room_versions")
    if not isinstance(room_versions, Mapping):
        return "1", ["1"]
    available = room_versions.get("available") or {}
    stable = [version for version, stability in available.items() if stability == "stable"]
    default = room_versions.get("default")
    return (default if isinstance(default, str) else None), stable


def allows_restricted_joins(version: str) -> bool:
    number = _number(version)
    return number is not None and number >= RESTRICTED_JOINS_SINCE


def creators_have_unlimited_power(version: str) -> bool:
    """True from room version 12 on: the creator must be left out of the power levels' `users`."""
    number = _number(version)
    return number is not None and number >= CREATORS_UNLISTED_SINCE


def choose_room_version(capabilities: Mapping[str, Any]) -> str:
    """The version to create rooms in; raises NoUsableRoomVersion naming what the server offers."""
    default, stable = stable_versions(capabilities)
    if default is not None and default in stable and allows_restricted_joins(default):
        return default
    usable = [version for version in stable if allows_restricted_joins(version)]
    if usable:
        return max(usable, key=lambda version: _number(version) or 0)
    offered = ", ".join(sorted(stable, key=lambda v: (_number(v) is None, _number(v) or 0, v))) or "none"
    raise NoUsableRoomVersion(
        f"the homeserver offers no stable room version with restricted joins (version {RESTRICTED_JOINS_SINCE} or later); "
        f"stable versions offered: {offered}. Upgrade the homeserver: the bot's rooms are joined through the player's Space."
    )
