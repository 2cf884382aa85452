"""Strict chat-template role order: the check, the repair, and the FakeLLM refusing bad prompts."""

from __future__ import annotations

import pytest

from core.llm.fake import FakeLLM, RoleOrderError
from core.llm.roles import alternating, role_order_error


def _m(role: str, content: str = "x") -> dict:
    return {"role": role, "content": content}


def test_role_order_error_accepts_only_system_then_alternation_from_user() -> None:
    assert role_order_error([_m("system"), _m("user"), _m("assistant"), _m("user")]) is None
    assert role_order_error([_m("user")]) is None
    assert role_order_error([_m("system")]) is not None
    assert role_order_error([_m("system"), _m("assistant"), _m("user")]) is not None
    assert role_order_error([_m("system"), _m("user"), _m("user")]) is not None
    assert role_order_error([_m("system"), _m("user"), _m("system")]) is not None


def test_alternating_merges_same_role_and_opens_with_user() -> None:
    fixed = alternating([_m("system", "a"), _m("assistant", "hello"), _m("user", "u1"), _m("user", "u2"),
                         _m("system", "b")])
    assert role_order_error(fixed) is None
    assert fixed[0] == {"role": "system", "content": "a\n\nb"}
    assert fixed[1]["role"] == "user" and fixed[2] == {"role": "assistant", "content": "hello"}
    assert fixed[3] == {"role": "user", "content": "u1\n\nu2"}


async def test_fake_llm_refuses_roles_out_of_order() -> None:
    fake = FakeLLM({"narrate": "ok"})
    with pytest.raises(RoleOrderError):
        await fake.generate([_m("system"), _m("assistant")], purpose="narrate")
    assert await fake.generate([_m("system"), _m("user")], purpose="narrate") == "ok"
    assert await FakeLLM({"narrate": "ok"}, strict=False).generate([_m("assistant")], purpose="narrate") == "ok"
