"""What one turn costs the homeserver: the bot's requests while it answers a line, read from Synapse's access log.

A player's line must not make the bot read room state, members or history from the homeserver
(everything it needs is in its own store and sync cache): one turn is typing on, the reply and its
streamed edits, typing off, and the sync long-polls, nothing else.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.adapter.matrix.conftest import onboard
from tests.support.fake_openai import FakeOpenAIServer, Reply

pytestmark = pytest.mark.synapse

ACCESS_LINE = re.compile(r"\{(?P<user>[^}]*)\} Processed request: .*? (?P<status>\d{3}) \"(?P<method>[A-Z]+) (?P<path>\S+) HTTP")


def bot_requests(access_log: str, bot_id: str) -> list[tuple[str, str]]:
    """(method, path without the query) for each request the bot made, in order."""
    found = []
    for line in access_log.splitlines():
        match = ACCESS_LINE.search(line)
        if match and match["user"] == bot_id:
            found.append((match["method"], match["path"].split("?")[0]))
    return found


def kind(method: str, path: str) -> str:
    if path.endswith("/sync"):
        return "sync"
    if method == "PUT" and "/typing/" in path:
        return "typing"
    if method == "PUT" and "/send/m.room.message/" in path:
        return "message"
    return f"{method} {path}"


def test_a_turn_makes_no_state_member_or_history_reads(start_bot, fake_openai: FakeOpenAIServer) -> None:
    # ~2 s of streaming, so the reply is shown as a first message and a few edits.
    fake_openai.add_rule(Reply(text="The rain taps at the window. " * 8, chunk_size=20, chunk_delay_s=0.15), purpose="narrate")
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30})
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.wait_for(lambda: player.final_texts(story, bot.user_id), what="the greeting")
    time.sleep(1.5)  # onboarding's own requests are over
    access_log = bot.server.server.access_log
    start = access_log.stat().st_size

    player.send_text(story, "I shake the rain from my coat.")
    player.wait_for(lambda: any(t.endswith("The rain taps at the window.") and "I shake" not in t and t.count("rain") == 8
                                for t in player.final_texts(story, bot.user_id).values()), timeout_s=30, what="the complete reply")
    time.sleep(1.5)  # typing off and the last sync land in the log
    with access_log.open() as log:
        log.seek(start)
        requests = [kind(method, path) for method, path in bot_requests(log.read(), bot.user_id)]

    others = [r for r in requests if r not in ("sync", "typing", "message")]
    assert others == []
    assert requests.count("typing") == 2
    assert 2 <= requests.count("message") <= 6  # the reply, a few throttled edits (one a second at most), the final text
