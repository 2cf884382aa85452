"""Fixtures shared by every test: the real Synapse homeservers, PostgreSQL and the fake OpenAI server."""

import os

import pytest

pytest_plugins = ["tests.support.synapse", "tests.support.postgres", "tests.support.fake_openai"]


def _time_budget(item: pytest.Item) -> float:
    """The time a test allows itself (its own `timeout` mark; the suite's default when it has none)."""
    mark = item.get_closest_marker("timeout")
    return float(mark.args[0]) if mark and mark.args else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a parallel run (`make test`), the longest tests go out first (those that allow themselves
    the most time, then the other real-Synapse ones; they mostly wait), and the quick ones fill the
    workers' gaps at the end, so that the workers finish together. Otherwise the order is kept; every
    worker collects the same order, as pytest-xdist requires."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: (-_time_budget(item), item.get_closest_marker("synapse") is None))
