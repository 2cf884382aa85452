"""Faces and links, without a homeserver: portraits, monograms, per-message profiles and room pills."""

from __future__ import annotations

import io

from PIL import Image

from adapter.matrix.faces import builtin_portrait, character_face, initials, monogram, place_face
from adapter.matrix.render import PER_MESSAGE_PROFILE, SpeakerProfile, character_reply, edit_of, markdown_to_html, room_link
from core.characters.builtin import BUILTIN_CHARACTERS


def image(png: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture


def test_every_builtin_character_has_its_own_portrait() -> None:
    portraits = {card.character_id: builtin_portrait(card.character_id) for card in BUILTIN_CHARACTERS}
    assert all(portraits.values())
    assert len(set(portraits.values())) == len(portraits)  # no two alike
    for png in portraits.values():
        assert png is not None
        picture = image(png)
        assert picture.format == "PNG" and picture.size == (256, 256)
        assert len(picture.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 50  # a picture, not a flat square
    assert builtin_portrait("maren-ashdown") is None


def test_other_characters_get_a_monogram_that_is_always_the_same() -> None:
    assert initials("Maren Ashdown") == "MA" and initials("Odile") == "O" and initials("Brother Tamsin Vale") == "BV"
    assert initials("  ") == "?" and initials("the-grey-lady") == "TL"
    first, again = character_face("maren-ashdown", "Maren Ashdown"), character_face("maren-ashdown", "Maren Ashdown")
    assert first == again and image(first).size == (256, 256)
    assert monogram("Maren Ashdown", seed="a") != monogram("Maren Ashdown", seed="b")  # colours follow the character
    assert place_face("space") != place_face("lobby")


def test_a_reply_carries_the_speakers_profile_and_no_name_in_its_text() -> None:
    profile = SpeakerProfile("wren-halloway", "Wren Halloway", "mxc://localhost/abc")
    content = character_reply("*She looks up.* Hello, Tobin.", profile=profile)
    assert content[PER_MESSAGE_PROFILE] == {"id": "wren-halloway", "displayname": "Wren Halloway", "avatar_url": "mxc://localhost/abc"}
    # The sender (the bot, wearing Wren's face in the room) names the speaker: the text does not.
    assert content["body"] == "*She looks up.* Hello, Tobin."
    assert content["formatted_body"] == "<em>She looks up.</em> Hello, Tobin."
    assert content["m.mentions"] == {}  # the player's name in the text is not a mention
    edit = edit_of("$first", content)
    assert edit["m.new_content"][PER_MESSAGE_PROFILE] == content[PER_MESSAGE_PROFILE]


def test_a_line_mentions_only_the_players_it_names_on_purpose_and_an_edit_mentions_no_one_anew() -> None:
    content = character_reply("Hello.", mentions=("@tobin:localhost",))
    assert content["m.mentions"] == {"user_ids": ["@tobin:localhost"]}
    edit = edit_of("$first", content)
    assert edit["m.mentions"] == {} and edit["m.new_content"]["m.mentions"] == {"user_ids": ["@tobin:localhost"]}


def test_profile_fields_stay_within_255_bytes_and_a_missing_avatar_is_left_out() -> None:
    profile = SpeakerProfile("x" * 300, "É" * 200).content()
    assert len(profile["id"].encode()) <= 255 and len(profile["displayname"].encode()) <= 255
    assert "avatar_url" not in profile


def test_a_room_link_is_a_matrix_to_permalink_with_a_via_that_survives_sanitising() -> None:
    link = room_link("!AbC-12_x", "example.org", "your Space")
    assert link == "[your Space](https://matrix.to/#/!AbC-12_x?via=example.org)"
    assert markdown_to_html(link) == '<p><a href="https://matrix.to/#/!AbC-12_x?via=example.org">your Space</a></p>'
    old_style = room_link("!old:example.org", "example.org", "x")
    assert "%21" not in old_style and "!old:example.org?via" in old_style
