"""Config: TOML plus RPBOT_<SECTION>__<KEY> environment, with errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from adapter.config import ConfigError, load_config
from tests.support.bot_process import REPO_ROOT

GOOD = """
[matrix]
homeserver = "http://127.0.0.1:8008"
user_id = "@rpbot:localhost"
password = "secret"
allowed_users = ["@*:localhost"]

[storage]
data_dir = "./data"

[llm]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
narrative_model = "story"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("RPBOT_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rpbot.toml"
    path.write_text(text)
    return path


def test_a_good_file_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.matrix.homeserver == "http://127.0.0.1:8008"
    assert config.matrix.encryption is True
    assert config.llm.classifier_model == "story"  # falls back to the narrative model
    assert config.llm.timeout_s == 60
    assert config.storage.data_dir == Path("./data")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPBOT_MATRIX__PASSWORD", "from-env")
    monkeypatch.setenv("RPBOT_LLM__TIMEOUT_S", "5")
    monkeypatch.setenv("RPBOT_MATRIX__ALLOWED_USERS", '["@alice:localhost"]')
    config = load_config(write(tmp_path, GOOD))
    assert config.matrix.password == "from-env"
    assert config.llm.timeout_s == 5
    assert config.matrix.allowed_users == ["@alice:localhost"]


def test_environment_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPBOT_MATRIX__HOMESERVER", "https://matrix.example.org/")
    monkeypatch.setenv("RPBOT_MATRIX__USER_ID", "@bot:example.org")
    monkeypatch.setenv("RPBOT_MATRIX__ACCESS_TOKEN", "syt_abc")
    config = load_config(None)
    assert config.matrix.homeserver == "https://matrix.example.org"
    assert config.llm.provider == "demo"


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ('narrative_model = "story"', 'narrative_model = "story"\ntimeout_s = "soon"', "llm.timeout_s"),
        ('user_id = "@rpbot:localhost"', 'user_id = "rpbot"', "matrix.user_id"),
        ('homeserver = "http://127.0.0.1:8008"', 'homeserver = "localhost"', "matrix.homeserver"),
        ('provider = "openai"', 'provider = "gpt"', "llm.provider"),
        ('narrative_model = "story"', "", "llm.narrative_model"),
        ('password = "secret"', "", "matrix.password"),
        ('password = "secret"', 'password = "secret"\nencryption_typo = 1', "matrix.encryption_typo: unknown key"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, old: str, new: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, GOOD.replace(old, new)))
    assert named in str(raised.value)


def test_missing_section_and_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="matrix: Field required"):
        load_config(write(tmp_path, "[storage]\ndata_dir = 'x'\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[matrix\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_allowed_users_are_glob_patterns(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD.replace('["@*:localhost"]', '["@alice:localhost", "@team-*:example.org"]')))
    assert config.matrix.is_allowed("@alice:localhost")
    assert config.matrix.is_allowed("@team-x:example.org")
    assert not config.matrix.is_allowed("@mallory:localhost")
    empty = load_config(write(tmp_path, GOOD.replace('["@*:localhost"]', "[]")))
    assert not empty.matrix.is_allowed("@alice:localhost")


def rpbot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "adapter.cli", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_cli_help_lists_the_commands() -> None:
    result = rpbot("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "dev" in result.stdout


def test_cli_run_with_a_bad_config_names_the_key_and_exits_2(tmp_path: Path) -> None:
    result = rpbot("run", "--config", str(write(tmp_path, GOOD.replace('user_id = "@rpbot:localhost"', 'user_id = "x"'))))
    assert result.returncode == 2
    assert "matrix.user_id" in result.stderr and "RPBOT_MATRIX__USER_ID" in result.stderr
