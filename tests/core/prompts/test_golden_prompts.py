"""Golden prompts: one request of each kind from a scripted story with real cards, checked in as
readable text (tests/core/prompts/golden/), so a change to any prompt shows as a diff in review.

Regenerate them after an intended change with:
    RPBOT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/core/prompts/test_golden_prompts.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.core.prompts.scripted import (
    describe_call,
    golden_calls,
    group_story_calls,
    long_story_calls,
    play_group_scripted_story,
    play_long_scripted_story,
    play_scripted_story,
    scripted_llm,
)

GOLDEN = Path(__file__).parent / "golden"
KINDS = ["first_turn", "deep_turn", "guest_reply", "routing", "summary", "threads", "lifecycle", "meanwhile",
         "skip_narration", "regenerate", "relationship", "guest_entrance", "continued_reply", "ooc",
         "scene_part", "scene_part_rolled", "story_so_far", "long_story_turn", "group_entrance", "group_round"]


# The golden texts of each backend: its three stories are played once per run, not once per kind.
_PLAYED: dict[str, dict[str, str]] = {}


@pytest.fixture
async def golden_texts(request: pytest.FixtureRequest, open_engine) -> dict[str, str]:
    backend = request.node.callspec.params["engine_location"]
    if backend not in _PLAYED:
        _PLAYED[backend] = await _play_golden_stories(open_engine)
    return _PLAYED[backend]


async def _play_golden_stories(open_engine) -> dict[str, str]:
    fake = scripted_llm()
    engine = await open_engine(fake)
    await play_scripted_story(engine)
    texts = {kind: describe_call(call) for kind, call in golden_calls(fake).items()}
    long_fake = scripted_llm()
    await play_long_scripted_story(await open_engine(long_fake, name="long.sqlite3"))
    texts |= {kind: describe_call(call) for kind, call in long_story_calls(long_fake).items()}
    group_fake = scripted_llm()
    await play_group_scripted_story(await open_engine(group_fake, name="group.sqlite3"))
    return texts | {kind: describe_call(call) for kind, call in group_story_calls(group_fake).items()}


async def test_every_call_kind_has_a_golden_prompt(golden_texts) -> None:
    assert sorted(golden_texts) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
async def test_prompt_matches_its_golden_file(golden_texts, kind: str) -> None:
    path = GOLDEN / f"{kind}.txt"
    if os.environ.get("RPBOT_UPDATE_GOLDEN"):
        path.write_text(golden_texts[kind], encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with RPBOT_UPDATE_GOLDEN=1 to write it"
    assert golden_texts[kind] == path.read_text(encoding="utf-8"), (
        f"the {kind} prompt changed; if intended, regenerate with RPBOT_UPDATE_GOLDEN=1 and review the diff"
    )
