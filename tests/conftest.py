"""Fixtures shared by every test: the real Synapse homeservers, PostgreSQL and the fake OpenAI server."""

pytest_plugins = ["tests.support.synapse", "tests.support.postgres", "tests.support.fake_openai"]
