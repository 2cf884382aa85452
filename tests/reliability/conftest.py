"""Fixtures for the reliability tests: the real bot against real Synapse, shared with the adapter tests."""

from tests.adapter.matrix.conftest import start_bot, start_bot_default_limits  # noqa: F401
