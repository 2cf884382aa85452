"""One truth per fact: no second record, and no second reader kept only for old data or tests.

- Which lines are owed is the engine's (`receive_line`, `owed_lines`). A cache from before it
  owned them still holds `lines_to_hand_over`: only the adapter's store names it, for the one
  conversion that hands those lines to the engine at start and drops the table.
"""

from __future__ import annotations

from tests.house.test_layering import ROOT, python_files, where


def test_only_the_store_names_the_lines_an_older_cache_owed() -> None:
    found = [
        where(path, line)
        for path in python_files("core", "adapter")
        if path != ROOT / "adapter/matrix/store.py"
        for line, text in enumerate(path.read_text().splitlines(), start=1)
        if "lines_to_hand_over" in text or "line_to_hand_over" in text
    ]
    assert found == []

