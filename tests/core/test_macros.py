"""Card macros: case-insensitive, story time, old spellings, nothing left behind."""

from __future__ import annotations

from datetime import datetime

from core.services.macros import MacroValues, expand

VALUES = MacroValues(char="Maren", user="Tobin", clock=datetime(2026, 4, 1, 21, 5), original="BASE",
                     description="{{char}} keeps the light")


def test_macros_are_case_insensitive_and_use_the_persona_name() -> None:
    assert expand("{{Char}} and {{USER}} and {{user}}", VALUES) == "Maren and Tobin and Tobin"
    assert expand("<USER> meets <bot> and <Char>", VALUES) == "Tobin meets Maren and Maren"


def test_story_time_macros_read_the_chat_clock() -> None:
    assert expand("{{weekday}}, {{date}}, {{time}}", VALUES) == "Wednesday, April 1, 2026, 9:05 PM"


def test_original_nested_fields_and_unknown_macros_leave_no_braces() -> None:
    assert expand("{{original}}\nMore.", VALUES) == "BASE\nMore."
    assert expand("{{description}}.", VALUES) == "Maren keeps the light."
    assert expand("a{{// a comment}}b{{random::x,y}}c{{trim}}{{newline}}d", VALUES) == "abc\nd"
    assert "{{" not in expand("{{unclosed and {{char}}", VALUES)
