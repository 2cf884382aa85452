"""Fixtures shared by every test: the real Synapse homeservers and the fake OpenAI server."""

pytest_plugins = ["tests.support.synapse", "tests.support.fake_openai"]
