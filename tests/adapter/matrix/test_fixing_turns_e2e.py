"""Fixing a turn in Element, against a real Synapse and the real bot: editing a line re-runs it
(the reply replaced in place), deleting it takes it back (the bot removes its reply), reactions
◀ ▶ and `!take` flip between takes, ⏩ and `!continue` make a reply go on, `!note` stands in the
prompt, `((...))` is answered out of character, `!persona` in a story room is that story's,
`!rewind` takes lines back, and a skip a line asks for follows its answer and can be taken back.
The model is the fake OpenAI-compatible server, so each prompt can be read."""

from __future__ import annotations

import itertools

import pytest

from tests.adapter.matrix.conftest import RunningBot, onboard
from tests.adapter.matrix.test_restart_persistence import openai_llm
from tests.support.fake_openai import FakeOpenAIServer, RecordedRequest, Reply
from tests.support.matrix_user import MatrixUser

pytestmark = [pytest.mark.synapse, pytest.mark.on_both_backends]


class Story:
    """The player in their first story room, and what the bot shows there."""

    def __init__(self, bot: RunningBot, player: MatrixUser, room: str, fake: FakeOpenAIServer) -> None:
        self.bot, self.player, self.room, self.fake = bot, player, room, fake

    def shown(self) -> dict[str, str]:
        return self.player.final_texts(self.room, self.bot.user_id)

    def wait(self, condition, what: str, timeout_s: float = 60):
        return self.player.wait_for(condition, timeout_s=timeout_s, what=what)

    def say(self, line: str, expect: str) -> tuple[str, str]:
        """Send a line; (its event id, the id of the bot message that answers it with `expect`)."""
        event_id = self.player.send_text(self.room, line)
        message = self.wait(lambda: next((e for e, t in self.shown().items() if expect in t), None), f"{expect!r}")
        return event_id, message

    def notice(self, expect: str, timeout_s: float = 60) -> str:
        def found() -> str | None:
            for event in reversed(self.player.messages_from(self.room, self.bot.user_id)):
                body = event["content"].get("body", "")
                if event["content"].get("msgtype") == "m.notice" and expect in body:
                    return body
            return None

        return self.wait(found, f"a notice with {expect!r}", timeout_s)

    def narrate_prompts(self) -> list[str]:
        return ["\n".join(str(m.get("content")) for m in r.messages) for r in self.fake.requests_for(purpose="narrate")]

    def press(self, message: str, key: str) -> None:
        """React `key` to `message`, then wait for the bot to take the reaction off (it has acted)."""
        reaction = self.player.react(self.room, message, key)
        self.wait(lambda: reaction in self.player.redactions(self.room), f"{key} acted on")

    def last_narrate(self) -> RecordedRequest:
        return self.fake.requests_for(purpose="narrate")[-1]


def scripted_model(fake: FakeOpenAIServer) -> None:
    replies = itertools.count(1)

    def route(request: RecordedRequest) -> Reply | None:
        if request.purpose == "ooc":
            return Reply(text="Out of the story: the storm is coming, and it will matter.")
        if request.purpose == "addressee" and "Goodnight" in request.last_user_message:
            return Reply(text='{"time": "skip", "amount": "8h"}')
        if request.purpose != "narrate":
            return None
        if "from where it stopped" in request.last_user_message:
            return Reply(text="And then the lamp went out.")
        return Reply(text=f"Reply {next(replies)} to: {request.player_line}")

    fake.router = route
    fake.add_rule(Reply(text="{}"), has_response_format=True)


def test_editing_deleting_takes_and_continue_as_the_player_does_them_in_element(
    start_bot, fake_openai: FakeOpenAIServer
) -> None:
    scripted_model(fake_openai)
    bot = start_bot(llm=openai_llm(fake_openai))
    player = bot.player()
    _, _, room = onboard(bot, player)
    story = Story(bot, player, room, fake_openai)
    story.wait(story.shown, "the greeting")

    # Edit the latest line: the reply is replaced in place, answering the edited line.
    line, reply = story.say("I look at the sea tokTYPOx.", "Reply 1 to: I look at the sea tokTYPOx.")
    player.edit(room, line, "I look at the lighthouse.")
    story.wait(lambda: "Reply 2 to: I look at the lighthouse." in story.shown().get(reply, ""), "the reply redone in place")
    assert not any("tokTYPOx" in prompt for prompt in story.narrate_prompts()[1:])

    # Takes: 🔄 writes a new one in place; ◀ ▶ and !take flip between them; !take says which is shown.
    player.react(room, reply, "🔄")
    story.wait(lambda: "Reply 3 to:" in story.shown().get(reply, ""), "a new take")
    story.press(reply, "◀\ufe0f")
    story.wait(lambda: "Reply 2 to:" in story.shown().get(reply, ""), "the earlier take shown again")
    player.send_text(room, "!take")
    assert "take 1 of 2" in story.notice("newest reply shows take")
    story.press(reply, "▶")
    story.wait(lambda: "Reply 3 to:" in story.shown().get(reply, ""), "the later take shown again")
    story.press(reply, "▶")
    assert "This is the newest take (2 of 2)" in story.notice("newest take")
    player.send_text(room, "!take 1")
    story.wait(lambda: "Reply 2 to:" in story.shown().get(reply, ""), "take 1 by command")

    # Continue: ⏩ makes the reply go on, in the same message.
    story.press(reply, "⏩")
    story.wait(lambda: story.shown().get(reply, "").endswith("And then the lamp went out."), "the reply going on")
    continued = story.last_narrate()
    assert continued.messages[-2]["role"] == "assistant" and "Reply 2 to:" in continued.messages[-2]["content"]

    # A note for the story: shown by !note, in the next prompts at depth, in !context.
    player.send_text(room, "!note Keep the tone hopeful.")
    story.notice("The story's note is set")
    _, second = story.say("I climb the stairs.", "Reply 4 to: I climb the stairs.")
    assert "[Author's note: Keep the tone hopeful.]" in story.narrate_prompts()[-1]
    player.send_text(room, "!context")
    assert "the story's note" in story.notice("Next prompt for")

    # Out of character: answered, and never part of the story.
    player.send_text(room, "((Is the storm real?))")
    assert "the storm is coming" in story.notice("Out of character")
    _, third = story.say("I open the door.", "Reply 5 to: I open the door.")
    assert "Is the storm real" not in story.narrate_prompts()[-1]

    # A persona for this story only, from the next line on.
    player.send_text(room, "!persona Tobin the Elder: older now")
    story.notice("In this story you now play")
    story.say("I sit down.", "Reply 6 to: I sit down.")
    assert "User: Tobin the Elder" in story.last_narrate().system_prompt

    # An older line cannot be edited or deleted: a notice says what to do instead.
    first_line = next(e["event_id"] for e in player.timeline[room] if e.get("content", {}).get("body") == "I climb the stairs.")
    player.edit(room, first_line, "I run up the stairs.")
    story.notice("Only your latest line can be changed")
    player.redact(room, first_line)
    story.notice("Only your latest line can be taken back")

    # Delete the latest line: the story forgets it, and the bot removes its reply.
    latest = next(e["event_id"] for e in player.timeline[room] if e.get("content", {}).get("body") == "I sit down.")
    latest_reply = next(e for e, t in story.shown().items() if "Reply 6 to:" in t)
    player.redact(room, latest)
    story.wait(lambda: latest_reply not in story.shown(), "the reply removed")
    assert "Taken back" in story.notice("the story is as it was before that line")

    # !rewind 2 takes back the last two lines; the bot removes the lines and their replies.
    player.send_text(room, "!rewind 2")
    story.notice("your last 2 lines")
    story.wait(lambda: second not in story.shown() and third not in story.shown(), "the replies removed")
    assert player.redactions(room).keys() >= {first_line}
    story.say("Where were we?", "Reply 7 to: Where were we?")
    prompt = story.narrate_prompts()[-1]
    assert "I climb the stairs" not in prompt and "I open the door" not in prompt and "I sit down" not in prompt
    assert "I look at the lighthouse." in prompt and "And then the lamp went out." in prompt

    # A line that asks for a skip is answered first; the skip follows, and `!rewind` takes back just the skip.
    _, goodnight = story.say("Goodnight, I sleep now.", "Reply 8 to: Goodnight, I sleep now.")
    passing = story.notice("Time passes")
    assert "`!rewind` takes this back" in passing
    skip_notice = next(e for e, t in story.shown().items() if t == passing)
    player.send_text(room, "!rewind")
    assert "your line and its answer stay" in story.notice("the skip or scene close your last line asked for")
    story.wait(lambda: skip_notice not in story.shown(), "the narration removed")
    assert goodnight in story.shown()
