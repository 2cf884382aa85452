"""Story time as prompts say it: part of day, the time-now line, and how long ago something was."""

from __future__ import annotations

from datetime import datetime

import pytest

from core.services.story_clock import PART_HOURS, PARTS_OF_DAY, part_of_day, time_now_line, when_phrase

NOW = datetime(1887, 10, 14, 23, 40)  # a Friday, at night


@pytest.mark.parametrize(("hour", "part"), [
    (0, "late night"), (3, "late night"), (4, "before dawn"), (5, "before dawn"), (6, "early morning"),
    (8, "early morning"), (9, "morning"), (11, "morning"), (12, "midday"), (13, "midday"), (14, "afternoon"),
    (17, "afternoon"), (18, "evening"), (20, "evening"), (21, "night"), (23, "night"),
])
def test_part_of_day_by_hour(hour: int, part: str) -> None:
    assert part_of_day(datetime(2026, 4, 1, hour, 30)) == part


def test_every_part_has_an_hour_that_falls_in_it() -> None:
    assert set(PART_HOURS) == set(PARTS_OF_DAY)
    for part, hour in PART_HOURS.items():
        assert part_of_day(datetime(2026, 4, 1, hour, 0)) == part


def test_time_now_line_states_date_time_and_part_of_day() -> None:
    assert time_now_line(datetime(1887, 10, 11, 23, 40)) == "Story time now: Tuesday, October 11, 1887, 11:40 PM (night)."
    assert time_now_line(datetime(2026, 4, 1, 0, 5)) == "Story time now: Wednesday, April 1, 2026, 12:05 AM (late night)."
    assert time_now_line(datetime(2026, 4, 1, 9, 0)) == "Story time now: Wednesday, April 1, 2026, 9:00 AM (morning)."


@pytest.mark.parametrize(("then", "now", "phrase"), [
    # the clock stands still while people talk: the same story time is "a little earlier"
    (NOW, NOW, "a little earlier"),
    (datetime(1887, 10, 14, 23, 30), NOW, "a little earlier"),
    (datetime(1887, 10, 15, 1, 0), NOW, "a little earlier"),  # a time after now (never shown as future)
    (datetime(1887, 10, 14, 23, 0), NOW, "less than an hour ago"),
    # the same day
    (datetime(1887, 10, 14, 21, 5), NOW, "earlier tonight"),
    (datetime(1887, 10, 14, 19, 0), NOW, "this evening"),
    (datetime(1887, 10, 14, 15, 0), NOW, "this afternoon"),
    (datetime(1887, 10, 14, 12, 30), NOW, "at midday"),
    (datetime(1887, 10, 14, 10, 0), NOW, "this morning"),
    (datetime(1887, 10, 14, 7, 0), NOW, "early this morning"),
    (datetime(1887, 10, 14, 5, 0), NOW, "before dawn today"),
    (datetime(1887, 10, 14, 1, 0), NOW, "last night"),
    (datetime(1887, 10, 14, 18, 5), datetime(1887, 10, 14, 20, 30), "earlier this evening"),
    (datetime(1887, 10, 14, 9, 10), datetime(1887, 10, 14, 11, 0), "earlier this morning"),
    (datetime(1887, 10, 14, 0, 30), datetime(1887, 10, 14, 3, 0), "earlier tonight"),
    # the day before
    (datetime(1887, 10, 13, 19, 0), NOW, "yesterday evening"),
    (datetime(1887, 10, 13, 10, 0), NOW, "yesterday morning"),
    (datetime(1887, 10, 13, 7, 0), NOW, "yesterday morning"),
    (datetime(1887, 10, 13, 12, 15), NOW, "yesterday at midday"),
    (datetime(1887, 10, 13, 16, 0), NOW, "yesterday afternoon"),
    (datetime(1887, 10, 13, 5, 0), NOW, "yesterday before dawn"),
    (datetime(1887, 10, 13, 22, 0), datetime(1887, 10, 14, 8, 0), "last night"),
    (datetime(1887, 10, 13, 2, 0), datetime(1887, 10, 14, 8, 0), "the night before last"),
    # days, weeks, dates
    (datetime(1887, 10, 12, 22, 0), NOW, "two days ago, at night"),
    (datetime(1887, 10, 11, 9, 30), NOW, "three days ago, in the morning"),
    (datetime(1887, 10, 11, 15, 0), NOW, "three days ago, in the afternoon"),
    (datetime(1887, 10, 9, 6, 30), NOW, "five days ago, early in the morning"),
    (datetime(1887, 10, 6, 12, 0), NOW, "last week"),
    (datetime(1887, 10, 1, 12, 0), NOW, "last week"),
    (datetime(1887, 3, 3, 12, 0), NOW, "on March 3"),
    (datetime(1885, 3, 3, 12, 0), NOW, "on March 3, 1885"),
])
def test_when_phrase(then: datetime, now: datetime, phrase: str) -> None:
    assert when_phrase(then, now) == phrase
