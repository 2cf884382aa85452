"""`rpbot doctor` when things are broken (a bad config, no homeserver, no LLM endpoint, no database)
and its database check (no Synapse needed)."""

from __future__ import annotations

import asyncio

from adapter.devserver import free_port
from core.eventlog import open_database
from core.eventlog.migrations import latest_version
from tests.operator.conftest import rpbot
from tests.operator.test_doctor import verdicts
from tests.support.bot_process import write_config


def test_a_bad_config_fails_and_names_the_key(tmp_path):
    config = tmp_path / "rpbot.toml"
    config.write_text('[matrix]\nhomeserver = "nope"\nuser_id = "@rpbot:localhost"\npassword = "x"\n')
    result = rpbot("doctor", "--config", config)
    assert result.returncode == 1
    assert verdicts(result.stdout) == {"config": "FAIL"}
    assert "matrix.homeserver" in result.stdout


def test_an_unreachable_homeserver_and_llm_fail(tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "rpbot.toml", homeserver=f"http://127.0.0.1:{port}", user_id="@rpbot:localhost",
        password="secret-password", allowed_users=[], data_dir=tmp_path / "data",
        llm={"provider": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "narrative_model": "m"},
    )
    result = rpbot("doctor", "--config", config)
    assert result.returncode == 1
    checks = verdicts(result.stdout)
    assert checks["homeserver"] == "FAIL" and checks["llm endpoint"] == "FAIL"
    assert "secret-password" not in result.stdout + result.stderr


def offline_config(tmp_path, **storage):
    return write_config(
        tmp_path / "rpbot.toml", homeserver=f"http://127.0.0.1:{free_port()}", user_id="@rpbot:localhost",
        password="secret-password", allowed_users=[], data_dir=tmp_path / "data", **storage,
    )


def test_the_database_check_reads_a_sqlite_file_without_touching_it(tmp_path):
    config = offline_config(tmp_path)
    result = rpbot("doctor", "--config", config)
    assert verdicts(result.stdout)["database"] == "OK" and "no stories yet" in result.stdout
    (tmp_path / "data").mkdir()
    asyncio.run(_create(tmp_path / "data" / "engine.sqlite3"))
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    result = rpbot("doctor", "--config", config)
    assert verdicts(result.stdout)["database"] == "OK"
    assert f"schema version {latest_version()} (current)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before


def test_the_database_check_reaches_postgres_and_names_its_schema_version(tmp_path, postgres_url):
    config = offline_config(tmp_path, database_url=postgres_url)
    result = rpbot("doctor", "--config", config)
    assert verdicts(result.stdout)["database"] == "OK" and "PostgreSQL" in result.stdout and "no stories yet" in result.stdout
    asyncio.run(_create(postgres_url))
    result = rpbot("doctor", "--config", config)
    assert verdicts(result.stdout)["database"] == "OK"
    assert f"schema version {latest_version()} (current), writable" in result.stdout


def test_an_unreachable_database_fails_without_printing_its_password(tmp_path):
    config = offline_config(tmp_path, database_url=f"postgresql://rpbot:db-secret@127.0.0.1:{free_port()}/rpbot")
    result = rpbot("doctor", "--config", config)
    assert result.returncode == 1
    assert verdicts(result.stdout)["database"] == "FAIL" and "cannot be reached" in result.stdout
    assert "db-secret" not in result.stdout + result.stderr and "rpbot:***@" in result.stdout


async def _create(location) -> None:
    db = await open_database(location)
    await db.close()
