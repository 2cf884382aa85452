"""The room version decision over capability documents of old and new homeservers, and power levels per version."""

from __future__ import annotations

import pytest

from adapter.matrix.room_versions import (
    NoUsableRoomVersion,
    choose_room_version,
    creators_have_unlimited_power,
    stable_versions,
)
from adapter.matrix.spaces import power_levels


def capabilities(default: str | None, available: dict[str, str]) -> dict:
    room_versions: dict = {"available": available}
    if default is not None:
        room_versions["default"] = default
    return {"capabilities": {"m.room_versions": room_versions, "m.change_password": {"enabled": True}}}


def stable(*versions: str) -> dict[str, str]:
    return {version: "stable" for version in versions}


SYNAPSE_1_163 = capabilities("12", {**stable(*map(str, range(1, 13))), "org.matrix.hydra.11": "unstable"})
SYNAPSE_1_120 = capabilities("10", {**stable(*map(str, range(1, 12))), "org.matrix.msc3757.10": "unstable"})
SYNAPSE_2021 = capabilities("6", {**stable(*map(str, range(1, 10))), "org.matrix.msc2716": "unstable"})


def test_a_current_synapse_gets_its_default_version_12() -> None:
    assert choose_room_version(SYNAPSE_1_163) == "12"


def test_an_older_synapse_gets_its_default_when_it_allows_restricted_joins() -> None:
    assert choose_room_version(SYNAPSE_1_120) == "10"


def test_a_default_without_restricted_joins_gives_way_to_the_highest_stable_version_that_has_them() -> None:
    assert choose_room_version(SYNAPSE_2021) == "9"


def test_an_unstable_default_is_not_used() -> None:
    assert choose_room_version(capabilities("13", {**stable("9", "10", "11"), "13": "unstable"})) == "11"


def test_unstable_versions_and_non_numeric_names_are_never_chosen() -> None:
    offered = capabilities("6", {**stable("6", "8"), "org.matrix.msc9999": "stable", "12": "unstable"})
    assert choose_room_version(offered) == "8"


def test_a_server_with_no_restricted_joins_is_refused_naming_what_it_offers() -> None:
    with pytest.raises(NoUsableRoomVersion) as refused:
        choose_room_version(capabilities("5", stable("1", "2", "3", "4", "5", "6", "7")))
    message = str(refused.value)
    assert "restricted joins" in message and "version 8 or later" in message
    assert "1, 2, 3, 4, 5, 6, 7" in message


def test_a_server_that_leaves_room_versions_out_is_read_as_version_1_only() -> None:
    assert stable_versions({"capabilities": {}}) == ("1", ["1"])
    assert stable_versions({}) == ("1", ["1"])
    with pytest.raises(NoUsableRoomVersion):
        choose_room_version({})


@pytest.mark.parametrize(("version", "unlimited"), [("8", False), ("10", False), ("11", False), ("12", True), ("13", True), ("org.x", False)])
def test_creators_have_unlimited_power_from_version_12(version: str, unlimited: bool) -> None:
    assert creators_have_unlimited_power(version) is unlimited


def test_power_levels_list_the_bot_before_12_and_leave_the_creator_out_from_12() -> None:
    before = power_levels("@bot:hs", "@p:hs", "10")
    after = power_levels("@bot:hs", "@p:hs", "12")
    assert before["users"] == {"@bot:hs": 100, "@p:hs": 50}
    assert after["users"] == {"@p:hs": 50}
    for levels in (before, after):
        assert levels["events"]["org.rpbot.room"] == 100 and levels["events"]["m.room.power_levels"] == 100
        assert levels["users_default"] == 0 and levels["kick"] == levels["invite"] == 50
    assert {key: value for key, value in before.items() if key != "users"} == {key: value for key, value in after.items() if key != "users"}
