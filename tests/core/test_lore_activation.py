"""Lorebook activation, rule by rule, as SillyTavern's world info activates entries."""

from __future__ import annotations

from core.services.lore import AND_ALL, AND_ANY, NOT_ALL, NOT_ANY, activate
from core.state.lore import LoreEntry

BIG = 10_000


def contents(entries: list[LoreEntry]) -> list[str]:
    return [e.content for e in entries]


def run(entries: list[LoreEntry], *texts: str, depth: int = 4, budget: int = BIG, recursive: bool = False) -> list[str]:
    return contents(activate(entries, list(texts), scan_depth=depth, token_budget=budget, recursive=recursive))


def test_plain_keys_match_case_insensitively_unless_the_entry_is_case_sensitive() -> None:
    lamp = LoreEntry("The lamp burns colza oil.", keys=("Lamp",))
    strict = LoreEntry("Halvard ground the lens.", keys=("Halvard",), case_sensitive=True)
    assert run([lamp, strict], "I climb up to the LAMP room.") == [lamp.content]
    assert run([lamp, strict], "who was halvard?") == []
    assert run([lamp, strict], "Who was Halvard?") == [strict.content]


def test_whole_words_when_asked_for() -> None:
    gull = LoreEntry("Gulls nest on the gallery.", keys=("gull",), match_whole_words=True)
    loose = LoreEntry("Anything gull-ish.", keys=("gull",))
    assert run([gull, loose], "Gullrock at dawn") == [loose.content]
    assert run([gull, loose], "a gull, screaming") == [gull.content, loose.content]


def test_regex_keys_carry_their_own_flags_and_use_regex_makes_every_key_a_pattern() -> None:
    teeth = LoreEntry("The Teeth are a reef.", keys=(r"/\b(the )?teeth\b|\breefs?\b/i",))
    cased = LoreEntry("Only a capital Storm.", keys=("/Storm/",), case_sensitive=False)
    pattern = LoreEntry("The Alba sank.", keys=(r"alba|wreck(age)?",), use_regex=True)
    assert run([teeth], "Breakers over the TEETH tonight") == [teeth.content]
    assert run([teeth], "the reefs are awash") == [teeth.content]
    assert run([teeth], "she gritted her teethe") == []
    assert run([cased], "a storm comes") == []  # a /regex/ key ignores the case setting: no `i`, no match
    assert run([cased], "a Storm comes") == [cased.content]
    assert run([pattern], "WRECKAGE on the rocks") == [pattern.content]


def test_a_broken_regex_is_matched_as_plain_text() -> None:
    broken = LoreEntry("Brackets.", keys=("/[unclosed/",))
    assert run([broken], "look: /[unclosed/ here") == [broken.content]
    assert run([broken], "unclosed") == []


def test_secondary_keys_follow_the_selective_logic() -> None:
    def boat(logic: int) -> LoreEntry:
        return LoreEntry(f"logic {logic}", keys=("boat",), secondary_keys=("late", "Thursday"), selective_logic=logic)

    both, one, neither = "the boat is late this Thursday", "the boat is late", "the boat came"
    assert run([boat(AND_ANY)], one) and run([boat(AND_ANY)], both) and not run([boat(AND_ANY)], neither)
    assert run([boat(NOT_ALL)], one) and run([boat(NOT_ALL)], neither) and not run([boat(NOT_ALL)], both)
    assert run([boat(NOT_ANY)], neither) and not run([boat(NOT_ANY)], one)
    assert run([boat(AND_ALL)], both) and not run([boat(AND_ALL)], one)
    assert run([boat(AND_ANY)], "late on Thursday, no vessel") == []  # secondary keys alone never activate


def test_constant_entries_are_always_on_and_disabled_ones_never() -> None:
    rock = LoreEntry("Gullrock is granite.", constant=True)
    ghost = LoreEntry("A ghost walks.", keys=("ghost",), enabled=False)
    keyless = LoreEntry("No keys, not constant.")
    assert run([rock, ghost, keyless], "a ghost!") == [rock.content]
    assert run([rock], depth=0) == [rock.content]


def test_the_result_is_in_insertion_order_lower_order_first() -> None:
    late = LoreEntry("order 300", keys=("lamp",), order=300)
    early = LoreEntry("order 5", keys=("lamp",), order=5)
    middle = LoreEntry("order 100", constant=True)
    assert run([late, early, middle], "the lamp") == ["order 5", "order 100", "order 300"]


def test_the_budget_is_spent_by_priority_then_order_and_stops_at_the_first_that_does_not_fit() -> None:
    high = LoreEntry("h" * 40, keys=("lamp",), order=200)  # 10 tokens
    low = LoreEntry("l" * 40, keys=("lamp",), order=50)
    tiny = LoreEntry("t" * 4, keys=("lamp",), order=10)  # 1 token, would fit, but ranks after `low`
    assert run([low, tiny, high], "lamp", budget=15) == [high.content]
    assert run([low, tiny, high], "lamp", budget=21) == [tiny.content, low.content, high.content]
    favoured = LoreEntry("f" * 40, keys=("lamp",), order=1, priority=5)
    assert run([high, favoured], "lamp", budget=10) == [favoured.content]
    free = LoreEntry("free " * 40, keys=("lamp",), ignore_budget=True)
    assert run([high, low, free], "lamp", budget=10) == [free.content, high.content]


def test_scan_depth_counts_the_newest_messages_and_an_entry_may_look_further() -> None:
    lamp = LoreEntry("lamp lore", keys=("lamp",))
    far = LoreEntry("far lore", keys=("lamp",), scan_depth=3)
    texts = ("the lamp is lit", "a gull cries", "waves")
    assert run([lamp, far], *texts, depth=2) == ["far lore"]
    assert run([lamp], *texts, depth=3) == ["lamp lore"]
    assert run([lamp], *texts, depth=0) == []
    assert run([lamp], *texts, depth=50) == ["lamp lore"]


def test_no_key_matches_across_two_messages() -> None:
    boat = LoreEntry("boat lore", keys=("supply boat",))
    assert run([boat], "we wait for the supply", "boat hook in hand") == []


def test_recursion_scans_activated_contents_within_bounds() -> None:
    lamp = LoreEntry("The lens was ground by Halvard.", keys=("lamp",))
    halvard = LoreEntry("Halvard drowned in a calm.", keys=("Halvard",))
    calm = LoreEntry("A calm sea is the most dangerous.", keys=("calm",))
    assert run([lamp, halvard, calm], "the lamp", recursive=False) == [lamp.content]
    assert run([lamp, halvard, calm], "the lamp", recursive=True) == [lamp.content, halvard.content, calm.content]


def test_prevent_exclude_and_delay_recursion() -> None:
    storm = LoreEntry("Spray reaches the lamp.", keys=("storm",), prevent_recursion=True)
    lamp = LoreEntry("The lamp room.", keys=("lamp",))
    assert run([storm, lamp], "a storm", recursive=True) == [storm.content]

    opener = LoreEntry("Ask about the lamp.", keys=("keeper",))
    shy = LoreEntry("Only on its own.", keys=("lamp",), exclude_recursion=True)
    assert run([opener, shy], "the keeper", recursive=True) == [opener.content]
    assert run([opener, shy], "the keeper and the lamp", recursive=True) == [opener.content, shy.content]

    delayed = LoreEntry("Later.", keys=("keeper",), delay_until_recursion=True)
    assert "Later." in run([opener, delayed], "the keeper", recursive=True)
    assert run([delayed], "nothing here", recursive=True) == []
    assert run([delayed], "the keeper", recursive=False) == ["Later."]  # a last pass for what waits on recursion


def test_recursion_is_bounded_even_by_a_chain_of_entries() -> None:
    chain = [LoreEntry(f"link{i + 1}", keys=(f"link{i}",)) for i in range(30)]
    found = run(chain, "link0", recursive=True)
    assert 1 < len(found) < 30 and found[0] == "link1"


def test_an_overflowing_budget_ends_recursion() -> None:
    lamp = LoreEntry("x" * 36 + " Halvard", keys=("lamp",))  # 12 tokens
    halvard = LoreEntry("y" * 8, keys=("Halvard",))
    big = LoreEntry("z" * 80, keys=("lamp",), order=50)
    assert run([lamp, big, halvard], "lamp", budget=14, recursive=True) == [lamp.content]


def test_a_catastrophic_regex_key_from_a_file_cannot_stall_a_turn() -> None:
    import time

    evil = LoreEntry("never", keys=("/(a+)+$/",))
    fine = LoreEntry("the bell", keys=("bell",))
    started = time.monotonic()
    assert run([evil, fine], "the bell! " + "a" * 40 + "!") == ["the bell"]  # the bad key simply does not match
    for _ in range(50):  # and once it ran out of time it costs nothing on later turns
        run([evil, fine], "the bell! " + "a" * 40 + "!")
    assert time.monotonic() - started < 1.0
