"""Real-Synapse fixtures: a throwaway homeserver per test session.

Every homeserver here starts from the config `synapse --generate-config` writes, as a new
operator's does, and runs from the `homeserver` extra with SQLite. What differs from that stock
config, and why:

- every server: the listener is on a free port on 127.0.0.1 (tests run side by side and reach
  nothing off this machine), and Synapse logs to files in its directory (WARNING and above,
  plus an access log some tests count requests in). Neither changes what a client sees.
- `synapse`: rate limits relaxed, so tests that are not about rate limits are not slowed by
  them. Tests about limits use `synapse_default_limits`, which keeps Synapse's own.
- `homeserver_with_default_room_version(version)`: `default_room_version` set to what the
  compatibility tests name (10, 11, 12), standing in for homeservers of other ages; 12 is the
  stock default of current Synapse and what every other fixture runs.

`make dev` (`rpbot dev`) runs the same stock config with only the first difference (its
listener and log files): Synapse's own rate limits, as a player's homeserver has them.

Nothing else is set: no room-version pin, no feature flags. Tests using a homeserver carry the
`synapse` marker; each server is torn down when its tests are done.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from adapter.devserver import LocalHomeserver, RegisteredUser

_counter = itertools.count(1)


class SynapseServer:
    """A started LocalHomeserver plus an admin account for inspecting it."""

    def __init__(self, server: LocalHomeserver) -> None:
        self.server = server
        self.url = server.url
        self.admin: RegisteredUser = server.register(f"admin{os.getpid()}", admin=True)

    def register(self, prefix: str, *, admin: bool = False) -> RegisteredUser:
        """A new account whose name starts with `prefix` and is unique in this session."""
        return self.server.register(f"{prefix}-{next(_counter)}-{os.getpid()}", admin=admin)


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, *, relaxed: bool) -> Iterator[SynapseServer]:
    server = LocalHomeserver(tmp_path_factory.mktemp(name), relaxed_rate_limits=relaxed, access_log=True)
    server.start()
    try:
        yield SynapseServer(server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    yield from _start(tmp_path_factory, "synapse-relaxed", relaxed=True)


@pytest.fixture(scope="session")
def synapse_default_limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    yield from _start(tmp_path_factory, "synapse-default", relaxed=False)


@pytest.fixture(scope="session")
def homeserver_with_default_room_version(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], SynapseServer]]:
    """A homeserver whose default room version is the one named (one server per version, kept for the session)."""
    servers: dict[str, LocalHomeserver] = {}
    started: dict[str, SynapseServer] = {}

    def get(version: str) -> SynapseServer:
        if version not in started:
            server = LocalHomeserver(
                tmp_path_factory.mktemp(f"synapse-v{version}"), relaxed_rate_limits=True, settings={"default_room_version": version}
            )
            server.start()
            servers[version] = server
            started[version] = SynapseServer(server)
        return started[version]

    try:
        yield get
    finally:
        for server in servers.values():
            server.stop()
