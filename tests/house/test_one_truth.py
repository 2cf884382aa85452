"""One truth per fact: no second record, and no second reader kept only for old data or tests.

- Which lines are owed is the engine's (`receive_line`, `owed_lines`). A cache from before it
  owned them still holds `lines_to_hand_over`: only the adapter's store names it, for the one
  conversion that hands those lines to the engine at start and drops the table.
- What a regenerate replaces is read one way (`exchange_to_regenerate`, from `last_turn`): the
  turns read model has no second reader of the latest reply.
"""

from __future__ import annotations

import re

from core.state import turns
from tests.house.test_layering import ROOT, python_files, where


def test_only_the_store_names_the_lines_an_older_cache_owed() -> None:
    found = [
        where(path, line)
        for path in python_files("core", "adapter")
        if path not in (ROOT / "adapter/matrix/store.py", ROOT / "adapter/matrix/store_schema.py")
        for line, text in enumerate(path.read_text().splitlines(), start=1)
        if "lines_to_hand_over" in text or "line_to_hand_over" in text
    ]
    assert found == []


def test_the_latest_turn_has_one_reader() -> None:
    readers = sorted(name for name in vars(turns) if re.fullmatch(r"last_\w*turn", name))
    assert readers == ["last_turn"]
