"""Real-Synapse fixtures: a throwaway homeserver per test session, in two flavours.

`synapse` has its rate limits relaxed; `synapse_default_limits` keeps
Synapse's stock limits (the bot is limited as on a real server). Both run
from the `homeserver` extra on a free loopback port with SQLite, and are torn
down at the end of the session. Tests using them carry the `synapse` marker.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

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
