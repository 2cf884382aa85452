"""Fixtures for the reliability tests: the real bot against real Synapse, shared with the adapter tests."""

from tests.adapter.matrix.conftest import start_bot as start_bot
from tests.adapter.matrix.conftest import start_bot_default_limits as start_bot_default_limits
