"""The offline demo model, the purpose-routed FakeLLM and the client factory."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from pydantic import BaseModel

from core.llm import (
    DemoLLM,
    FakeLLM,
    LLMClient,
    LLMStreamError,
    LLMTimeoutError,
    OpenAICompatibleClient,
    UnplannedLLMCallError,
    make_llm_client,
)

CARD = (
    "You are playing a character.\n"
    "Character: Mira\n"
    "Personality: curious, sharp-tongued, kind\n"
    "Scenario: A rain-soaked lighthouse at dusk\n"
    "User: Sam"
)


def conversation(user_line: str) -> list[dict]:
    return [{"role": "system", "content": CARD}, {"role": "user", "content": user_line}]


async def test_demo_is_deterministic_and_in_character():
    line = "I found an old map of the smugglers' caves."
    first = await DemoLLM(word_delay_s=0).generate(conversation(line), purpose="narrate")
    second = await DemoLLM(word_delay_s=0).generate(conversation(line), purpose="narrate")
    assert first == second
    assert "Mira" in first
    assert "an old map" in first.lower()
    replies = {
        await DemoLLM(word_delay_s=0).generate(
            conversation(f"Tell me about the {thing}."), purpose="narrate"
        )
        for thing in ("storm", "captain", "lantern", "ship", "harbour", "letter")
    }
    assert len(replies) > 1


async def test_demo_streams_the_same_text_word_by_word():
    demo = DemoLLM(word_delay_s=0)
    messages = conversation("Do you trust the captain?")
    deltas = [delta async for delta in demo.stream(messages, purpose="narrate")]
    assert len(deltas) > 5
    assert "".join(deltas) == await demo.generate(messages, purpose="narrate")
    assert isinstance(demo, LLMClient)


async def test_demo_greets_summarises_and_answers_classifiers():
    demo = DemoLLM(word_delay_s=0)
    greeting = await demo.generate([{"role": "system", "content": CARD}], purpose="greeting")
    assert "Mira" in greeting
    summary = await demo.generate(
        conversation("We should leave before the tide."), purpose="scene_close"
    )
    assert "Key quotes" in summary and "Mira" in summary

    class Choice(BaseModel):
        speaker: str
        confident: bool = True

    raw = await demo.generate(
        conversation("hi"), purpose="addressee", role="classifier", response_schema=Choice
    )
    assert Choice.model_validate(json.loads(raw)) == Choice(speaker="", confident=True)


async def test_fake_routes_by_purpose_and_records_calls():
    class Pick(BaseModel):
        speaker: str

    fake = FakeLLM(
        {
            "narrate": "Mira smiles.",
            "addressee": Pick(speaker="mira"),
            "summary": lambda messages: f"{len(messages)} messages",
        }
    )
    assert await fake.generate(conversation("x"), purpose="summary") == "2 messages"
    assert json.loads(
        await fake.generate(conversation("x"), purpose="addressee", role="classifier")
    ) == {"speaker": "mira"}
    assert (
        "".join([d async for d in fake.stream(conversation("hello"), purpose="narrate")])
        == "Mira smiles."
    )
    assert fake.purposes == ["summary", "addressee", "narrate"]
    narrate = fake.calls_for("narrate")[0]
    assert (
        narrate.streamed
        and narrate.last_user_message == "hello"
        and "Mira" in narrate.system_prompt
    )
    assert fake.calls_for("addressee")[0].role == "classifier"
    assert isinstance(fake, LLMClient)


async def test_fake_rejects_unplanned_purposes():
    fake = FakeLLM({"narrate": "ok"})
    with pytest.raises(UnplannedLLMCallError, match="threads"):
        await fake.generate(conversation("x"), purpose="threads")
    with pytest.raises(UnplannedLLMCallError):
        async for _ in fake.stream(conversation("x"), purpose="meanwhile"):
            pass
    assert [call.purpose for call in fake.unplanned] == ["threads", "meanwhile"]


async def test_fake_delays_errors_and_chunks():
    fake = FakeLLM(
        {"narrate": "abcdefgh", "lifecycle": "{}"},
        delays={"lifecycle": 0.2},
        errors={"summary": LLMTimeoutError("too slow")},
        chunk_size=3,
    )
    started = time.monotonic()
    await fake.generate(conversation("x"), purpose="lifecycle")
    assert time.monotonic() - started >= 0.19
    with pytest.raises(LLMTimeoutError):
        await fake.generate(conversation("x"), purpose="summary")
    assert [d async for d in fake.stream(conversation("x"), purpose="narrate")] == [
        "abc",
        "def",
        "gh",
    ]

    fake.set_error("narrate", LLMStreamError("cut", partial_text="abc"), after_chunks=1)
    received: list[str] = []
    with pytest.raises(LLMStreamError):
        async for delta in fake.stream(conversation("x"), purpose="narrate"):
            received.append(delta)
    assert received == ["abc"]
    fake.set_error("narrate", None)
    assert await fake.generate(conversation("x"), purpose="narrate") == "abcdefgh"


async def test_fake_supports_async_routes_and_cancellation():
    async def slow(messages):
        await asyncio.sleep(5)
        return "never"

    fake = FakeLLM({"narrate": slow})
    task = asyncio.create_task(fake.generate(conversation("x"), purpose="narrate"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_factory_builds_each_provider():
    demo = make_llm_client(
        "demo", provider="demo", base_url="http://unused", api_key="", narrative_model="m"
    )
    assert isinstance(demo, DemoLLM)
    client = make_llm_client(
        "OpenAI", base_url="http://127.0.0.1:1/v1", narrative_model="n", classifier_model=""
    )
    assert isinstance(client, OpenAICompatibleClient)
    assert client.model_for("classifier") == "n"  # falls back to the narrative model
    await client.aclose()
    with pytest.raises(ValueError, match="unknown LLM provider"):
        make_llm_client("llama")


MAREN = (
    "You are Maren Ashdown in an ongoing roleplay with Tobin Reyes.\n"
    "Character: Maren Ashdown\nPersonality: gruff, patient, dryly funny\n"
    "Scenario: Tobin Reyes washed up below the Gullrock light two days ago; Maren Ashdown has been patching them up.\n"
    "User: Tobin Reyes"
)
PLAYER_LINES = [
    "Where is the old boat?", "Tell me about the storm.", "I found a brass key in the sand.", "Why do you keep the lamp lit?",
    "Thank you for the tea.", "Who else lives on the rock?", "I want to see the lighthouse lamp.", "Is the supply boat late?",
    "What happened to the Alba?", "Can I help with the nets?",
]


def play(demo: DemoLLM) -> list[str]:
    messages = [{"role": "system", "content": MAREN}, {"role": "user", "content": "[The scene begins.]"},
                {"role": "assistant", "content": "*Maren Ashdown sets down a mug.* You're awake."}]
    replies = []
    for line in PLAYER_LINES:
        messages.append({"role": "user", "content": line})
        reply = demo.reply_for(messages, purpose="narrate")
        replies.append(reply)
        messages.append({"role": "assistant", "content": reply})
    return replies


def test_demo_answers_in_the_players_name_never_quotes_the_card_and_varies_its_openings():
    replies = play(DemoLLM(word_delay_s=0))
    scenario_runs = {" ".join(words) for words in zip(*(MAREN.split("Scenario: ")[1].split()[i:] for i in range(5)), strict=False)}
    for reply in replies:
        assert not any(run in reply for run in scenario_runs), reply  # no five words of the scenario in a row
        assert "you has" not in reply.lower() and "{" not in reply
    openings = [" ".join(reply.split()[:3]) for reply in replies]
    assert all(a != b for a, b in zip(openings, openings[1:], strict=False)), openings
    assert len(set(openings)) >= 6
    asked = replies[0]  # "Where is the old boat?": the reply is about the boat
    assert "old boat" in asked


def test_demo_narrates_a_skip_as_the_narrator():
    demo = DemoLLM(word_delay_s=0)
    prompt = [
        {"role": "system", "content": "You are the narrator of a roleplay between Tobin Reyes (the player) and Maren Ashdown."},
        {"role": "user", "content": (
            "Recent lines:\nTobin Reyes: I need to sleep.\n\nTime passes: 2 hours, from Wednesday 9:00 AM to Wednesday 11:00 AM."
        )},
    ]
    text = demo.reply_for(prompt, purpose="skip")
    assert "2 hours" in text or "2 Hours" in text
    assert "narrator" not in text.lower() and '"' not in text  # told by nobody, no dialogue
    assert "Maren" not in text  # no character acts in the narration


async def test_the_demo_answers_the_players_line_not_the_notes_after_it(open_engine):
    from tests.core.pipeline.conftest import HOST, collect

    engine = await open_engine(DemoLLM(word_delay_s=0))
    chat = await engine.create_chat(owner="@p:hs", host=HOST)
    await engine.greeting(chat.chat_id)
    reply = (await collect(engine.post_turn(chat.chat_id, "Tell me about the drowned bell.", "$1")))[-1].text
    swipe = (await collect(engine.regenerate(chat.chat_id)))[-1].text
    for text in (reply, swipe):
        assert not any(word in text.lower() for word in ("story time", "notes", "afresh", "affinity")), text


async def test_the_demo_writes_a_guests_entrance_as_an_arrival(open_engine):
    engine = await open_engine(DemoLLM(word_delay_s=0))
    chat = await engine.create_chat(owner="@p:hs", host="wren-halloway", guest="odile-marchetti")
    await engine.greeting(chat.chat_id)
    entrance = await engine.guest_entrance(chat.chat_id)
    assert entrance is not None and entrance.speaker_id == "odile-marchetti"
    assert "Odile" in entrance.text and ("comes in" in entrance.text or "door opens" in entrance.text)


async def test_the_demo_gives_the_other_characters_short_answer_as_an_aside():
    # The instruction as the pipeline writes it (core.services.talk), answered as an aside.
    reply = await DemoLLM(word_delay_s=0).generate([
        {"role": "system", "content": "Character: Captain Odile Marchetti\nPersonality: pragmatic"},
        {"role": "user", "content": "Wren Halloway: Odile, tell them.\n\n[Wren Halloway has just spoken to Captain "
                                    "Odile Marchetti. Write Captain Odile Marchetti's short answer: a line or two.]"},
    ], purpose="narrate")
    assert "Odile" in reply and "short answer" not in reply and "tell them" not in reply


def test_the_demo_model_answers_out_of_character_and_goes_on_with_a_reply() -> None:
    demo = DemoLLM(word_delay_s=0)
    asked = [{"role": "system", "content": "You are the storyteller behind a roleplay."},
             {"role": "user", "content": "Tobin, out of character: Is the storm real?"}]
    answer = demo.reply_for(asked, purpose="ooc")
    assert "storm" in answer and "*" not in answer and not answer.startswith("Out of character")
    going_on = [{"role": "system", "content": "Character: Wren\nUser: Tobin"}, {"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "[Wren goes on.]\n\n[Continue Wren's last message from where it stopped.]"}]
    more = demo.reply_for(going_on, purpose="narrate")
    assert more.startswith(" ") and "Hello" not in more


async def test_each_new_take_the_demo_writes_differs_from_the_takes_before_it(open_engine):
    # A new take's prompt is the first take's with a note asking for it afresh: picked by a hash of
    # the prompt alone, a take could read word for word as the one before, and 🔄 (or ◀ back to the
    # first) would change nothing the player sees.
    engine = await open_engine(DemoLLM(word_delay_s=0))
    chat = (await engine.create_chat(owner="@p:hs", host="tamsin-vale")).chat_id
    greeting = (await engine.greeting(chat)).text
    greetings = [greeting, *[(await collect(engine.regenerate(chat)))[-1].text for _ in range(2)]]
    assert len(set(greetings)) == len(greetings), greetings
    lines = ["Good morning. Is there more of that tea?", "Where is the old boat that brought me here?",
             "I found a brass key in the sand below the light.", "Why do you keep the lamp lit when no ships come?",
             "Tell me about the storm that wrecked us.", "Who else lives on this rock?", "Can I help you mend the nets?",
             "What happened to the rest of the crew?"]
    for number, line in enumerate(lines):
        takes = [(await collect(engine.post_turn(chat, line, f"$line{number}", player="@p:hs")))[-1].text]
        takes += [(await collect(engine.regenerate(chat)))[-1].text for _ in range(3)]
        assert len(set(takes)) == len(takes), (line, takes)


async def collect(updates):
    return [update async for update in updates]
