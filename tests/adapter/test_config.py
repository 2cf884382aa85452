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
        ('data_dir = "./data"', 'data_dir = "./data"\ndatabase_url = "mysql://db/rpbot"', "storage.database_url"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, old: str, new: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, GOOD.replace(old, new)))
    assert named in str(raised.value)


def test_the_stories_live_in_sqlite_files_unless_a_postgres_url_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.storage.database_url == ""
    assert config.storage.engine_location() == Path("./data/engine.sqlite3")
    assert config.storage.adapter_location() == Path("./data/adapter.sqlite3")
    monkeypatch.setenv("RPBOT_STORAGE__DATABASE_URL", "postgresql://rpbot@db.example.org/rpbot")
    config = load_config(write(tmp_path, GOOD))
    assert config.storage.engine_location() == config.storage.adapter_location() == "postgresql://rpbot@db.example.org/rpbot"


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


MODEL_SETTINGS = GOOD + """context_tokens = 12000
max_reply_tokens = 600
system_placement = "first_user"

[llm.sampling]
temperature = 0.9
min_p = 0.05
repetition_penalty = 1.1
chat_template_kwargs = {enable_thinking = false}
"""


def test_the_models_own_settings_load_with_defaults_for_what_is_not_set(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MODEL_SETTINGS))
    assert config.llm.context_tokens == 12000 and config.llm.max_reply_tokens == 600
    assert config.llm.system_placement == "first_user"
    assert config.llm.sampling == {"temperature": 0.9, "min_p": 0.05, "repetition_penalty": 1.1,
                                   "chat_template_kwargs": {"enable_thinking": False}}
    plain = load_config(write(tmp_path, GOOD))
    assert (plain.llm.context_tokens, plain.llm.max_reply_tokens, plain.llm.system_placement, plain.llm.sampling) == (
        6000, 400, "system", {})


def test_the_older_spelling_reply_max_tokens_is_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(write(tmp_path, GOOD + "reply_max_tokens = 250\n")).llm.max_reply_tokens == 250
    monkeypatch.setenv("RPBOT_LLM__REPLY_MAX_TOKENS", "300")
    assert load_config(write(tmp_path, GOOD)).llm.max_reply_tokens == 300


def test_sampler_settings_from_the_environment_are_read_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPBOT_LLM__SAMPLING__TEMPERATURE", "0.7")
    monkeypatch.setenv("RPBOT_LLM__SAMPLING__STOP_TOKEN_IDS", "[2, 7]")
    monkeypatch.setenv("RPBOT_LLM__SAMPLING__GRAMMAR_NAME", "plain words")
    assert load_config(write(tmp_path, GOOD)).llm.sampling == {
        "temperature": 0.7, "stop_token_ids": [2, 7], "grammar_name": "plain words"}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ("context_tokens = 100\n", "llm.context_tokens"),
        ('system_placement = "assistant"\n', "llm.system_placement"),
        ("[llm.sampling]\nmessages = []\n", "llm.sampling: cannot set messages"),
        ("max_reply_tokens = 5\n", "llm.max_reply_tokens"),
    ],
)
def test_bad_model_settings_are_named(tmp_path: Path, extra: str, named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, GOOD + extra))
    assert named in str(raised.value)


async def test_the_model_settings_reach_the_model_server_and_the_engine(tmp_path: Path, fake_openai) -> None:
    from adapter.cli import make_llm, open_engine

    fake_openai.system_role = False  # a Gemma-style template: the system text must come in the first user message
    config = load_config(write(tmp_path, MODEL_SETTINGS.replace("http://127.0.0.1:11434/v1", fake_openai.base_url)))
    llm = make_llm(config)
    try:
        await llm.generate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."}],
                           purpose="narrate")
    finally:
        await llm.aclose()
    body = fake_openai.requests_for(purpose="narrate")[0].json
    assert body["messages"] == [{"role": "user", "content": "Be brief.\n\nHi."}]
    assert body["min_p"] == 0.05 and body["chat_template_kwargs"] == {"enable_thinking": False}
    engine = await open_engine(config.model_copy(update={"storage": config.storage.model_copy(update={"data_dir": tmp_path})}))
    try:
        assert engine.pipeline.budget_tokens == 12000 and engine.pipeline.replies.max_tokens == 600
    finally:
        await engine.close()
