"""`rpbot reconcile --dry-run` against a real Synapse: it reports what a restart would rebuild
and changes nothing, neither the cache (adapter.sqlite3, or its PostgreSQL schema) nor any room state."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from urllib.parse import quote

import httpx
import psycopg
import pytest
from psycopg import sql as pgsql

from adapter.matrix.store_schema import adapter_schema_name
from tests.operator.conftest import onboard, rpbot

pytestmark = [pytest.mark.synapse, pytest.mark.on_both_backends]


def fingerprint(bot) -> dict[str, object]:
    """The bot's cache as it is: hashes of adapter.sqlite3 and its WAL (None when absent), or every
    row of its PostgreSQL schema (None when there is no schema)."""
    if bot.database_url:
        schema = adapter_schema_name(bot.user_id)
        with psycopg.connect(bot.database_url) as conn:
            tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))]
            return {table: sorted(map(repr, conn.execute(pgsql.SQL("SELECT * FROM {}.{}").format(
                pgsql.Identifier(schema), pgsql.Identifier(table))))) for table in tables} or {"schema": None}
    data_dir = bot.process.config_path.parent / "data"
    return {
        name: hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        for name in ("adapter.sqlite3", "adapter.sqlite3-wal")
        for path in [data_dir / name]
    }


def forget_room(bot, room_id: str) -> None:
    """Delete one room's row from the stopped bot's cache."""
    if bot.database_url:
        with psycopg.connect(bot.database_url) as conn:
            conn.execute(pgsql.SQL("DELETE FROM {}.room_meta WHERE room_id = %s").format(
                pgsql.Identifier(adapter_schema_name(bot.user_id))), (room_id,))
        return
    with closing(sqlite3.connect(bot.process.config_path.parent / "data" / "adapter.sqlite3")) as conn, conn:
        conn.execute("DELETE FROM room_meta WHERE room_id = ?", (room_id,))


def room_states(player, room_ids) -> dict[str, set[tuple[str, str, str]]]:
    """Each room's current state as (type, state_key, event_id): a new state event changes it."""
    return {room_id: {(e["type"], e["state_key"], e["event_id"]) for e in player.state(room_id)} for room_id in room_ids}


def section(output: str, title: str) -> list[str]:
    """The indented lines under `title (N):` in the dry run's output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title + " ("))
    found = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        found.append(line.strip())
    return found


@pytest.fixture
def onboarded(start_bot):
    """A bot with one onboarded player, stopped (so nothing else touches its cache)."""
    bot = start_bot()
    player = bot.player()
    rooms = onboard(bot, player)
    bot.process.stop()
    return bot, player, rooms


def test_a_healthy_cache_needs_nothing(onboarded):
    bot, player, rooms = onboarded
    before = fingerprint(bot), room_states(player, rooms)

    result = rpbot("reconcile", "--config", bot.process.config_path, "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Dry run: nothing was changed." in result.stdout
    assert "a restart would rebuild nothing" in result.stdout
    assert section(result.stdout, "State writes once the bot is ready") == []  # made with them
    assert (fingerprint(bot), room_states(player, rooms)) == before


def test_a_lost_cache_is_planned_from_matrix_without_writing_it(onboarded):
    bot, player, (space, lobby, story) = onboarded
    bot.lose_cache()
    lost = fingerprint(bot)
    states_before = room_states(player, [space, lobby, story])

    result = rpbot("reconcile", "--config", bot.process.config_path, "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    room_writes = section(result.stdout, "Room writes")
    assert {line.split()[0]: line.split()[1] for line in room_writes} == {space: "space", lobby: "lobby", story: "chat"}
    assert any("platform=mx-" in line for line in room_writes)
    assert section(result.stdout, "User writes") == [f"{player.user_id}  space={space}  lobby={lobby}"]
    assert section(result.stdout, "State writes") == [] and section(result.stdout, "Unfinished onboardings") == []
    assert fingerprint(bot) == lost  # still lost: nothing was written
    assert room_states(player, [space, lobby, story]) == states_before


def test_a_legacy_room_would_be_backfilled_but_is_not(onboarded):
    bot, player, (space, lobby, story) = onboarded
    data_dir = bot.process.config_path.parent / "data"
    forget_room(bot, story)
    session = json.loads((data_dir / "session.json").read_text())
    identity = player.state_event(story, "org.rpbot.room")
    legacy = {key: value for key, value in identity.items() if key != "platform_chat_id"}
    httpx.put(  # an old bot version wrote no platform_chat_id
        f"{bot.server.url}/_matrix/client/v3/rooms/{quote(story)}/state/org.rpbot.room/",
        json=legacy, headers={"Authorization": f"Bearer {session['access_token']}"},
    ).raise_for_status()
    httpx.put(  # nor Element's settings
        f"{bot.server.url}/_matrix/client/v3/rooms/{quote(story)}/state/im.vector.web.settings/",
        json={}, headers={"Authorization": f"Bearer {session['access_token']}"},
    ).raise_for_status()
    before = fingerprint(bot), room_states(player, [space, lobby, story])

    result = rpbot("reconcile", "--config", bot.process.config_path, "--dry-run")

    assert result.returncode == 0, result.stdout + result.stderr
    assert section(result.stdout, "State writes") == [f"{story}  org.rpbot.room"]
    assert [line.split()[0] for line in section(result.stdout, "Room writes")] == [story]
    assert "platform=mx-legacy-" in section(result.stdout, "Room writes")[0]
    assert section(result.stdout, "State writes once the bot is ready") == [f"{story}  im.vector.web.settings"]
    assert (fingerprint(bot), room_states(player, [space, lobby, story])) == before


def test_dry_run_is_required(tmp_path):
    result = rpbot("reconcile", "--config", tmp_path / "rpbot.toml")
    assert result.returncode == 2 and "--dry-run" in result.stderr
