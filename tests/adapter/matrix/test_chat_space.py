"""A conversation in a story room, end to end: streaming edits, swipes in place, stopping."""

from __future__ import annotations

import itertools

import pytest

from tests.adapter.matrix.conftest import onboard
from tests.support.fake_openai import FakeOpenAIServer, Reply
from tests.support.matrix_user import MatrixUser

pytestmark = pytest.mark.synapse


def replies(player: MatrixUser, room: str, bot_id: str) -> dict[str, str]:
    return player.final_texts(room, bot_id)


def test_streamed_reply_swipes_and_stop(start_bot, fake_openai: FakeOpenAIServer) -> None:
    calls = itertools.count(1)

    def narrate(request) -> Reply:
        if "Go on and on" in request.last_user_message:
            return Reply(text=" ".join(["and then"] * 400), chunk_size=8, chunk_delay_s=0.05)
        return Reply(text=f"Take {next(calls)}: " + " ".join(f"word{i}" for i in range(30)) + ".", chunk_size=10, chunk_delay_s=0.25)

    fake_openai.router = lambda request: narrate(request) if request.purpose == "narrate" else None
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30})
    player = bot.player()
    _, _, story = onboard(bot, player)
    player.wait_for(lambda: replies(player, story, bot.user_id), what="the greeting")
    greeting_id = next(iter(replies(player, story, bot.user_id)))

    # One message per reply, edited in place while it streams, complete at the end.
    player.send_text(story, "Hello!")
    player.wait_for(lambda: any(t.endswith("word29.") for t in replies(player, story, bot.user_id).values()), what="the full reply")
    (reply_id,) = [e for e in replies(player, story, bot.user_id) if e != greeting_id]
    assert replies(player, story, bot.user_id)[reply_id].endswith("Take 1: " + " ".join(f"word{i}" for i in range(30)) + ".")
    assert len(player.edits_of(story, reply_id)) >= 2  # streamed, then the final edit

    # !regen: a new swipe replaces the same message.
    player.send_text(story, "!regen")
    player.wait_for(lambda: "Take 2:" in replies(player, story, bot.user_id)[reply_id], what="the second swipe in place")
    # 🔄 on it: a third.
    player.react(story, reply_id, "🔄")
    player.wait_for(lambda: "Take 3:" in replies(player, story, bot.user_id)[reply_id], what="the third swipe in place")
    player.wait_for(lambda: replies(player, story, bot.user_id)[reply_id].endswith("word29."), what="the third swipe complete")
    assert set(replies(player, story, bot.user_id)) == {greeting_id, reply_id}  # no new messages

    # ⏹ stops a long generation; what was written stays, marked stopped.
    player.send_text(story, "Go on and on.")
    long_id = player.wait_for(
        lambda: next((e for e, t in replies(player, story, bot.user_id).items() if "and then" in t), None), what="the long reply to start"
    )
    player.react(story, long_id, "⏹")
    player.wait_for(lambda: replies(player, story, bot.user_id)[long_id].endswith("…(stopped)"), what="the stopped reply")
    assert replies(player, story, bot.user_id)[long_id].count("and then") < 400
    assert any(r.wait_disconnected(timeout=5) for r in fake_openai.requests_for(purpose="narrate") if "Go on and on" in r.last_user_message)
