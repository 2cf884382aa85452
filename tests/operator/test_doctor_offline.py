"""`rpbot doctor` when things are broken: a bad config, no homeserver, no LLM endpoint (no Synapse needed)."""

from __future__ import annotations

from adapter.devserver import free_port
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
