"""A scripted story with real cards (the V2 PNG and the V3 JSON in tests/data) and a strict fake
model that answers by purpose; every request is kept, so tests can read each kind of prompt."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.engine import Engine, RoundLine
from core.llm import FakeLLM
from core.llm.fake import FakeLLMCall
from core.llm.roles import render_messages
from core.services.addressee import AddresseeDecision
from tests.core.pipeline.conftest import collect

DATA = Path(__file__).parents[2] / "data"
OWNER = "@tobin:gullrock.example"
PERSONA = ("Tobin Reyes", "a young deckhand, shipwrecked two days ago, stubborn and curious")

REPLIES = {
    "Maren Ashdown": ["*Maren grunts and tops up the mug.* Drink. You'll need your strength.",
                      "The buoy? It drifted in the winter storm. Lies about where the reef is now.",
                      "*She folds her arms.* Ilse hears everything. Half of it is even true.",
                      "Market's tomorrow at noon on the mainland. I'll take the boat if the sea allows."],
    "Ilse": ["*Ilse grins and slaps a letter onto the table.* One for you, and it smells of tar.",
             "Kell shipyard is asking after the Alba's crew. Someone wants to know who survived."],
    "Brother Tamsin Vale": ["*Tamsin folds their hands.* The harbour master sent me. He wants the buoy moved."],
}
FRIEND = "@mira:gullrock.example"
FRIEND_PERSONA = ("Mira Holt", "a smuggler's daughter who owes Ilse money and says so loudly")


def _speaker(messages) -> str:
    match = re.search(r"^Character: (.+)$", messages[0]["content"], re.MULTILINE)
    return match.group(1) if match else ""


def scripted_llm() -> FakeLLM:
    said: dict[str, int] = {}

    def narrate(messages) -> str:
        if "from where it stopped" in messages[-1]["content"]:
            return "*She pauses at the door.* And bring the oil up when you come; the lamp won't wait."
        speaker = _speaker(messages)
        if "arrives in this scene" in messages[-1]["content"]:
            if speaker.startswith("Brother"):
                return "*Tamsin ducks under the lintel, shaking rain from a grey hood.* Peace on this light, and on all of you."
            return "*Ilse bangs the lamp-room door open, dripping, and drops the post sack.* Mail! And news of the wreck."
        name = "Ilse" if speaker.startswith("Ilse") else speaker if speaker in REPLIES else "Maren Ashdown"
        index = said.get(name, 0)
        said[name] = index + 1
        return REPLIES[name][index % len(REPLIES[name])]

    def route(messages) -> AddresseeDecision:
        line = messages[-1]["content"].rsplit("latest line:\n", 1)[-1]
        if re.search(r"\b(sleep|rest) (?:for )?(?:a few|two|2) hours\b", line):
            return AddresseeDecision(speaker="maren-ashdown", confidence="high", time="skip", amount="2h")
        who = "ilse-varga-of-the-northern-post" if "Ilse" in line else "maren-ashdown"
        return AddresseeDecision(speaker=who, confidence="high")

    def summary(messages) -> str:
        me = messages[0]["content"].split(".", 1)[0].removeprefix("You are ")
        asked = re.search(r"^Tobin Reyes: (.+)$", messages[-1]["content"], re.MULTILINE)
        return ("I sat with Tobin Reyes in the lamp room while the tide turned. "
                + (f"Tobin asked: {asked.group(1)} " if asked and "Thank you" not in asked.group(1) else "")
                + f"({me}) I kept my worries to myself.")

    def meanwhile(messages) -> str:
        return ("*Maren taps the chart.* That buoy will drown someone." if "You are Maren" in messages[0]["content"]
                else "*Ilse shrugs.* Then move it yourself, keeper.")

    return FakeLLM({
        "narrate": narrate,
        "addressee": route,
        "scene_close": summary,
        "threads": {"open": [{"title": "The drifting buoy", "summary": "The Skerry buoy lies about the reef."}],
                    "update": [], "close": []},
        "lifecycle": {"transitions": [], "planned": [
            {"title": "Mainland market", "when": "tomorrow at noon", "description": "Maren takes the boat."}]},
        "meanwhile": meanwhile,
        "relationship": {"affinity": 1, "trust": 0, "why": "Tobin thanked her"},
        "skip": "The lamp turns through the grey hours while the tide runs out over the Teeth.",
        "ooc": "Out of the story: yes, Maren knows more about the Alba than she says; it will come out in time.",
        "scene_part": part,
        "story_so_far": "I took Tobin Reyes in after the wreck of the Alba. We mended nets, argued about the "
                        "drifting buoy and waited on Ilse's letters; someone at Kell shipyard is asking who survived.",
    })


def part(messages) -> str:
    if "The earlier account:" in messages[-1]["content"]:
        return "Tobin Reyes and I worked through the night: the lamp, the nets, and talk of the Alba."
    said = re.findall(r"^Tobin Reyes: (.+)$", messages[-1]["content"].split("The stretch:", 1)[-1], re.MULTILINE)
    return f"Tobin Reyes kept at the chores while the weather turned. First: {said[0] if said else 'nothing'}"


LONG_SCENE = ["I trim the wick again.", "The wind is rising from the north.", "I carry the oil up the stairs.",
              "Do you hear the bell on the reef?", "I mend the torn net by the stove.", "Tell me about the Alba's crew.",
              "The gulls are quiet tonight."]


async def play_long_scripted_story(engine: Engine) -> str:
    """A story long enough for the rolling summaries: six short scenes (so older summaries roll up
    into Maren's story so far), then one long scene (written in parts as it goes); returns the chat id."""
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    await engine.set_persona(OWNER, *PERSONA)
    chat = (await engine.create_chat(owner=OWNER, host=maren.character_id)).chat_id
    await engine.greeting(chat)
    for n, line in enumerate(["Thank you for the tea.", "What is that light out past the rocks?",
                              "Where does the buoy usually sit?", "Who keeps the lamp when you sleep?",
                              "Is the boat sound?", "Will the storm pass by morning?"]):
        await collect(engine.post_turn(chat, line, f"$short{n}"))
        await engine.close_scene(chat)
    for n in range(60):
        await collect(engine.post_turn(chat, LONG_SCENE[n % len(LONG_SCENE)], f"$long{n}"))
    await engine.pipeline.summary_jobs.settle(chat)
    await collect(engine.post_turn(chat, "What did I ask you about the buoy?", "$last"))
    await engine.pipeline.close()
    return chat


async def play_scripted_story(engine: Engine) -> str:
    """The story every golden prompt comes from; returns the chat id."""
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    await engine.set_persona(OWNER, *PERSONA)
    chat = (await engine.create_chat(owner=OWNER, host=maren.character_id, guest=ilse.character_id)).chat_id
    await engine.greeting(chat)
    await engine.guest_entrance(chat)
    lines = ["Thank you for the tea.", "What is that light out past the rocks?", "Ilse, any letters for me?",
             "Does Ilse always bring news?", "Who is asking about the Alba, Ilse?",
             "Maren, when do you go to the mainland?"]
    for n, line in enumerate(lines):
        await collect(engine.post_turn(chat, line, f"$line{n}"))
    await engine.close_scene(chat)
    await collect(engine.post_turn(chat, "I need to sleep for a few hours.", "$sleep"))
    await collect(engine.meanwhile(chat, maren.character_id, ilse.character_id, "an argument about the buoy"))
    await engine.set_note(chat, "Keep {{char}} gruff but kind; let the buoy matter.")
    await collect(engine.post_turn(chat, "(( Does Maren know more about the Alba than she says? ))", "$ooc"))
    for n, line in enumerate(["I slept like the dead. Is the buoy still adrift?", "Can I help you move it?"]):
        await collect(engine.post_turn(chat, line, f"$late{n}"))
    await collect(engine.regenerate(chat))
    await collect(engine.continue_reply(chat))
    await engine.pipeline.close()  # the after-turn readings of the last replies, too
    return chat


async def play_group_scripted_story(engine: Engine) -> str:
    """A story of two players and three characters: Tobin's, with Maren and Ilse, which Mira joins
    and Brother Tamsin Vale comes into; the players' lines, one each, then a round; returns the chat id."""
    maren = await engine.import_character((DATA / "maren_ashdown_v2.png").read_bytes())
    ilse = await engine.import_character((DATA / "ilse_varga_v3.json").read_text())
    await engine.set_persona(OWNER, *PERSONA)
    await engine.set_persona(FRIEND, *FRIEND_PERSONA)
    chat = (await engine.create_chat(owner=OWNER, host=maren.character_id, guest=ilse.character_id)).chat_id
    await engine.greeting(chat)
    await engine.guest_entrance(chat)
    await collect(engine.post_turn(chat, "Thank you for the tea.", "$t0"))
    await engine.join_player(chat, FRIEND, "mira")
    await collect(engine.post_turn(chat, "Ilse, before you ask: I'll pay you Friday.", "$m0", player=FRIEND))
    await collect(engine.invite_character(chat, "tamsin-vale"))
    await collect(engine.post_round(chat, [RoundLine(None, "Maren, who is our visitor?", "$t1"),
                                           RoundLine(FRIEND, "And why is a monk out in this weather?", "$m1")]))
    await engine.pipeline.close()
    return chat


def group_story_calls(fake: FakeLLM) -> dict[str, FakeLLMCall]:
    """The group story's entrance of a third character mid-story, and the reply to a round of two players."""
    narrate = fake.calls_for("narrate")
    return {"group_entrance": next(c for c in narrate if _speaker(c.messages).startswith("Brother")),
            "group_round": narrate[-1]}


def describe_call(call: FakeLLMCall) -> str:
    """A request as a golden file holds it: its parameters, then its messages."""
    params = {"purpose": call.purpose, "role": call.role, "max_tokens": call.max_tokens,
              "stop": call.stop, "response_schema": call.response_schema.__name__ if call.response_schema else None}
    return json.dumps(params, ensure_ascii=False) + "\n\n" + render_messages(call.messages)


def golden_calls(fake: FakeLLM) -> dict[str, FakeLLMCall]:
    """One request per call kind, picked from the scripted story's requests."""
    narrate = fake.calls_for("narrate")
    by_speaker = [(c, _speaker(c.messages)) for c in narrate]
    entrance, *narrate = narrate
    guest = next(c for c, who in by_speaker[1:] if who.startswith("Ilse"))
    return {
        "guest_entrance": entrance,
        "first_turn": narrate[0],
        "guest_reply": guest,
        "deep_turn": narrate[-3],  # with the story's note at depth
        "regenerate": narrate[-2],
        "continued_reply": narrate[-1],
        "ooc": fake.calls_for("ooc")[0],
        "routing": fake.calls_for("addressee")[0],  # "Does Ilse always bring news?": a mention, not a call
        "summary": fake.calls_for("scene_close")[0],
        "threads": fake.calls_for("threads")[0],
        "lifecycle": fake.calls_for("lifecycle")[0],
        "meanwhile": fake.calls_for("meanwhile")[1],
        "skip_narration": fake.calls_for("skip")[0],
        "relationship": fake.calls_for("relationship")[0],
    }


def long_story_calls(fake: FakeLLM) -> dict[str, FakeLLMCall]:
    """One request of each kind the long scripted story adds: a part, a roll-up of parts, the
    story so far, and a reply with all of them in its prompt."""
    parts = fake.calls_for("scene_part")
    return {
        "scene_part": next(c for c in parts if "The stretch:" in c.messages[-1]["content"]),
        "scene_part_rolled": next(c for c in parts if "The earlier account:" in c.messages[-1]["content"]),
        "story_so_far": fake.calls_for("story_so_far")[-1],
        "long_story_turn": fake.calls_for("narrate")[-1],
    }
