"""Room types are one enum, `adapter.matrix.room_types.RoomType`, not string literals.

Wherever code of the adapter says what a room is for (a room record, a comparison or set of room
types, the `room_type` of a room's identity state, a place's picture, SQL that filters by type),
it names a `RoomType` member. The shipped migrations of the cache and its PostgreSQL baseline keep
their literals (a step that shipped is never edited), and tests that check what goes over the wire keep theirs (the
stored values are the contract); tests that build room records use the enum too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from adapter.matrix.room_types import RoomType
from tests.house.test_layering import ROOT, python_files, where

VALUES = {member.value for member in RoomType}
SQL_BY_TYPE = re.compile(r"room_type\s*(=|!=|<>|IN|NOT IN)\s*\(?\s*'", re.IGNORECASE)


def literals(node: ast.AST) -> Iterator[ast.Constant]:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and inner.value in VALUES:
            yield inner


def says_room_type(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "room_type" in text or text.endswith("_ROOMS") or text == "kind"


def room_type_literals(path: Path, *, records_only: bool = False) -> Iterator[int]:
    """Lines of `path` where a room type is a string literal."""
    tree = ast.parse(path.read_text(), filename=str(path))
    migrations: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("SCHEMA.statements", "SCHEMA.baseline")):
            migrations |= {id(inner) for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "RoomMeta":
            typed = node.args[1:2] + [k.value for k in node.keywords if k.arg == "room_type"]
            yield from (c.lineno for arg in typed for c in literals(arg))
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            of_a_record = any(isinstance(o, ast.Attribute) and o.attr == "room_type" for o in operands)
            if of_a_record or (not records_only and any(says_room_type(o) for o in operands)):
                yield from (c.lineno for o in operands if not says_room_type(o) for c in literals(o))
        if records_only:
            continue
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "room_type" and value is not None:
                    yield from (c.lineno for c in literals(value))
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("place_avatar", "place_face"):
            yield from (c.lineno for arg in node.args for c in literals(arg))
        elif isinstance(node, ast.Assign) and any(says_room_type(t) for t in node.targets):
            yield from (c.lineno for c in literals(node.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in migrations:
            if SQL_BY_TYPE.search(node.value):
                yield node.lineno


def test_the_adapter_names_room_types_only_through_the_enum() -> None:
    enum_home = ROOT / "adapter/matrix/room_types.py"
    found = [where(path, line) for path in python_files("adapter") if path != enum_home for line in room_type_literals(path)]
    assert found == []


def test_tests_build_room_records_with_the_enum() -> None:
    found = [
        where(path, line)
        for path in python_files("tests")
        if "node_modules" not in path.parts
        for line in room_type_literals(path, records_only=True)
    ]
    assert found == []


def test_the_enum_stores_the_values_older_versions_wrote() -> None:
    assert {member.value for member in RoomType} == {"space", "lobby", "chat", "invite"}
    assert all(isinstance(member, str) for member in RoomType)
    assert RoomType("chat") is RoomType.STORY
