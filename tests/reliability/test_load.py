"""Several players talking at once against real Synapse: every line answered once, latency bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.load import run_load
from tests.support.fake_openai import FakeOpenAIServer
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


@pytest.mark.timeout(300)
def test_five_players_two_rooms_each_all_answered(synapse: SynapseServer, fake_openai: FakeOpenAIServer, tmp_path: Path) -> None:
    result = run_load(synapse, fake_openai, tmp_path, users=5, rooms_per_user=2, rounds=2, first_token_delay_s=0.5)
    summary = result.summary()
    print(summary)
    assert not result.errors, summary
    assert not result.wrong_lines, result.wrong_lines
    assert summary["replies_complete"] == summary["lines_sent"] == 20
    assert summary["latency_p99_s"] < 20, summary  # a reply takes ~1.5 s of model time; the rest is queueing
