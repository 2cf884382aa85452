"""The latency rule, seen from the model's side: what a player's line costs before narration.

One character and plain text: the narrative request is the first model call of the turn.
Two characters: none either when the line makes plain who answers (it goes on with the last
speaker, or calls one by name); exactly one classifier request when it does not. (Work after the reply is free
to call the model; only what comes before the first words is counted.)
"""

from __future__ import annotations

import pytest

from tests.adapter.matrix.conftest import onboard
from tests.support.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.synapse


def calls_before_narration(fake_openai: FakeOpenAIServer, line: str) -> list[str]:
    requests = fake_openai.requests
    narrate = next(i for i, r in enumerate(requests) if r.purpose == "narrate" and r.player_line.endswith(line))
    turn_start = max((i for i, r in enumerate(requests[:narrate]) if r.purpose == "narrate"), default=-1) + 1
    return [r.purpose for r in requests[turn_start:narrate] if line in " ".join(str(m.get("content")) for m in r.messages)]


def test_one_routing_call_at_most_and_none_for_a_single_character(start_bot, fake_openai: FakeOpenAIServer) -> None:
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30})
    player = bot.player()
    space_id, lobby, one_character = onboard(bot, player)
    player.send_text(lobby, "!new wren with odile")
    two_characters = player.wait_for(
        lambda: next((r["room_id"] for r in player.hierarchy(space_id) if "&" in (r.get("name") or "")), None), what="the guest story"
    )
    player.join(two_characters)

    lines = ((one_character, "I open the door."), (two_characters, "I greet you both."),
             (two_characters, "Wren, is the lamp lit?"), (two_characters, "Does Odile know the way?"))
    for room, line in lines:
        player.send_text(room, line)
        player.wait_for(lambda line=line: any(r.purpose == "narrate" and r.player_line.endswith(line)
                                              for r in fake_openai.requests), what=f"the reply to {line!r}")

    assert calls_before_narration(fake_openai, "I open the door.") == []
    assert calls_before_narration(fake_openai, "I greet you both.") == []  # goes on with the last speaker
    assert calls_before_narration(fake_openai, "Wren, is the lamp lit?") == []  # calls one by name
    assert calls_before_narration(fake_openai, "Does Odile know the way?") == ["addressee"]  # a mention: asked
