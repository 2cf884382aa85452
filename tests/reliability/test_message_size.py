"""Replies of any size and content fit in one Matrix event, edits included (Synapse refuses > 64 KiB)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.matrix.render import CUT_NOTE, character_reply, content_bytes, edit_of

SYNAPSE_EVENT_LIMIT = 65_536
ROOM_FOR_SIGNATURES_AND_IDS = 2_000


def fits(content: dict) -> bool:
    return content_bytes(content) + ROOM_FOR_SIGNATURES_AND_IDS < SYNAPSE_EVENT_LIMIT


def test_a_huge_reply_is_cut_with_a_note_and_its_edit_fits() -> None:
    for text in ("x" * 200_000, "&<>\"'" * 40_000, "é🙂" * 50_000, "**bold** " * 20_000):
        content = character_reply(text)
        assert fits(content) and fits(edit_of("$first", content))
        assert content["body"].startswith(text[:20]) and CUT_NOTE in content["body"]


def test_an_ordinary_reply_is_untouched() -> None:
    content = character_reply("Hello *there*.")
    assert content["body"] == "Hello *there*." and "<em>there</em>" in content["formatted_body"]
    edit = edit_of("$first", content)
    assert edit["body"] == "* Hello *there*." and edit["m.new_content"] == content


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40_000), st.booleans())
def test_any_text_makes_a_message_and_an_edit_that_fit(text: str, truncated: bool) -> None:
    content = character_reply(text, truncated=truncated)
    assert fits(content) and fits(edit_of("$first", content))
    assert "<script" not in content.get("formatted_body", "")
