"""Importing a character card from an upload, and how edits and replies of the player are read."""

from __future__ import annotations

import json

import pytest

from tests.adapter.matrix.conftest import onboard
from tests.support.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.synapse

CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Nyx Aldergrove",
        "description": "A cartographer of places that move.",
        "personality": "precise, restless",
        "scenario": "a map room at night",
        "first_mes": "*Nyx pins a map that keeps redrawing itself.* You're late. The coast moved again.",
        "mes_example": "",
        "extensions": {"custom_field": 42},
    },
}


def notices(player, room: str, bot_id: str) -> list[str]:
    return [e["content"]["body"] for e in player.messages_from(room, bot_id) if e["content"].get("msgtype") == "m.notice"]


def test_a_card_uploaded_to_the_lobby_is_imported_and_playable(start_bot) -> None:
    bot = start_bot()
    player = bot.player()
    space_id, lobby, _ = onboard(bot, player)

    url = player.upload(json.dumps(CARD).encode(), "nyx.json", "application/json")
    file_event = player.send_content(lobby, {"msgtype": "m.file", "body": "nyx.json", "url": url, "info": {"mimetype": "application/json"}})
    player.send_content(lobby, {
        "msgtype": "m.text",
        "body": "> <@someone> sent a file.\n\n!import",
        "m.relates_to": {"m.in_reply_to": {"event_id": file_event}},
    })
    imported = player.wait_for(lambda: [n for n in notices(player, lobby, bot.user_id) if "Imported" in n], what="the import answer")
    assert "**Nyx Aldergrove** (`nyx-aldergrove`)" in imported[0]

    player.send_text(lobby, "!new nyx")
    player.wait_for(lambda: len(player.hierarchy(space_id)) == 4, what="the new story room")
    room = next(r["room_id"] for r in player.hierarchy(space_id) if r.get("name") == "Nyx Aldergrove")
    player.join(room)
    greeting = player.wait_for(lambda: list(player.final_texts(room, bot.user_id).values()), what="Nyx's greeting")
    assert "The coast moved again." in greeting[0]

    bad = player.send_content(lobby, {"msgtype": "m.file", "body": "x.json", "url": player.upload(b"{not json", "x.json", "application/json")})
    player.send_content(lobby, {"msgtype": "m.text", "body": "!import", "m.relates_to": {"m.in_reply_to": {"event_id": bad}}})
    player.wait_for(lambda: [n for n in notices(player, lobby, bot.user_id) if "not a character card" in n], what="the refusal")
    player.send_text(lobby, "!import")
    player.wait_for(lambda: [n for n in notices(player, lobby, bot.user_id) if "reply to it with `!import`" in n], what="the usage")


def test_an_edit_reruns_its_turn_in_place_and_reply_quotes_are_not_part_of_the_line(
    start_bot, fake_openai: FakeOpenAIServer
) -> None:
    bot = start_bot(llm={"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "m", "timeout_s": 30})
    player = bot.player()
    _, _, story = onboard(bot, player)
    greeting_id = player.wait_for(lambda: list(player.final_texts(story, bot.user_id)), what="the greeting")[0]

    line = player.send_text(story, "I wave.")
    reply = player.wait_for(lambda: next((e for e, t in player.final_texts(story, bot.user_id).items() if "Echo: I wave." in t),
                                         None), what="the reply")
    player.send_content(story, {
        "msgtype": "m.text", "body": "* I wave wildly.",
        "m.new_content": {"msgtype": "m.text", "body": "I wave wildly."},
        "m.relates_to": {"rel_type": "m.replace", "event_id": line},
    })
    player.wait_for(lambda: "Echo: I wave wildly." in player.final_texts(story, bot.user_id).get(reply, ""),
                    what="the reply to the edited line, in place")
    player.send_content(story, {
        "msgtype": "m.text", "body": "> <@rpbot> the greeting\n\nWhat coast?",
        "m.relates_to": {"m.in_reply_to": {"event_id": greeting_id}},
    })
    player.wait_for(lambda: any("Echo: What coast?" in t for t in player.final_texts(story, bot.user_id).values()), what="the reply to the reply")
    narrations = [r.player_line for r in fake_openai.requests_for(purpose="narrate")]
    assert narrations == ["I wave.", "I wave wildly.", "What coast?"]  # the quote is not in the line
    assert len(player.final_texts(story, bot.user_id)) == 3  # the greeting and two replies: the edit made no new one
    assert "I wave." not in "\n".join(str(m.get("content")) for m in fake_openai.requests_for(purpose="narrate")[-1].messages)
