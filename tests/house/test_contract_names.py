"""The adapter's set-up contract names real things: no alias standing in for a renamed class.

- The adapter's cache is the class `StateStore` (not another class under a second name), and the
  store's functions take it first.
"""

from __future__ import annotations

import inspect

from adapter.matrix import store


def test_the_store_is_the_class_state_store_under_no_other_name() -> None:
    assert inspect.isclass(store.StateStore) and store.StateStore.__name__ == "StateStore"
    other_names = [name for name, value in vars(store).items() if value is store.StateStore and name != "StateStore"]
    assert other_names == []
    assert not hasattr(store, "AdapterStore")


def test_the_contract_functions_of_the_store_take_the_state_store_first() -> None:
    for name in ("get_room_meta", "set_room_meta", "get_user_meta", "set_user_meta", "next_platform_chat_id"):
        first = next(iter(inspect.signature(getattr(store, name)).parameters.values()))
        assert first.annotation == "StateStore", name
