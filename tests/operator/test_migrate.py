"""`rpbot migrate --to postgresql://...`: the stories of a SQLite data_dir moved into PostgreSQL,
every table rebuilt by replay and compared, the outcome said plainly (no Synapse needed)."""

from __future__ import annotations

import shutil

from tests.operator.conftest import rpbot
from tests.operator.test_doctor_offline import offline_config
from tests.storage.test_moving_stories import LEGACY


def test_the_stories_move_into_postgresql_and_the_two_agree(tmp_path, postgres_url):
    config = offline_config(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copyfile(LEGACY, tmp_path / "data" / "engine.sqlite3")
    moved = rpbot("migrate", "--config", config, "--to", postgres_url)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert "The two agree" in moved.stdout and "turns" in moved.stdout
    again = rpbot("migrate", "--config", config, "--to", postgres_url)
    assert again.returncode == 1 and "already holds" in again.stderr


def test_migrate_refuses_a_target_that_is_not_postgresql_and_a_data_dir_without_stories(tmp_path):
    config = offline_config(tmp_path)
    wrong = rpbot("migrate", "--config", config, "--to", str(tmp_path / "other.sqlite3"))
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
    empty = rpbot("migrate", "--config", config, "--to", "postgresql://rpbot@127.0.0.1:1/rpbot")
    assert empty.returncode == 1 and "does not exist" in empty.stderr
