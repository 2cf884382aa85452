"""`rpbot doctor` against a real Synapse and the fake OpenAI-compatible server."""

from __future__ import annotations

import json

import httpx
import pytest

from adapter.matrix.cross_signing import KEYS_FILE
from tests.operator.conftest import rpbot
from tests.support.bot_process import write_config
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse


def devices_of(server: SynapseServer, user_id: str) -> set[str]:
    response = httpx.get(
        f"{server.url}/_synapse/admin/v2/users/{user_id}/devices",
        headers={"Authorization": f"Bearer {server.admin.access_token}"},
    )
    response.raise_for_status()
    return {device["device_id"] for device in response.json()["devices"]}


def verdicts(output: str) -> dict[str, str]:
    """check name -> the line's verdict, from doctor's output (`OK    login   ...`)."""
    found = {}
    for line in output.splitlines():
        verdict, _, rest = line.partition("  ")
        if verdict.strip() in ("OK", "WARN", "FAIL"):
            found[rest.strip().split("  ")[0]] = verdict.strip()
    return found


def openai_llm(fake_openai) -> dict[str, str]:
    return {"provider": "openai", "base_url": fake_openai.base_url, "narrative_model": "fake-narrative"}


def test_doctor_reuses_the_running_bots_session_and_checks_everything(start_bot, fake_openai, synapse):
    bot = start_bot(llm=openai_llm(fake_openai))
    devices_before = devices_of(synapse, bot.user_id)

    result = rpbot("doctor", "--config", bot.process.config_path)

    assert result.returncode == 0, result.stdout + result.stderr
    checks = verdicts(result.stdout)
    assert checks == {
        "config": "OK", "allowed_users": "OK", "data_dir": "OK", "database": "OK", "homeserver": "OK", "login": "OK", "room versions": "OK",
        "rate limits": "WARN", "cross-signing": "OK", "llm models": "OK", "llm completion": "OK",
    }, result.stdout
    assert "not needed: matrix.encryption is off" in result.stdout
    assert "saved session" in result.stdout
    assert "unknown (needs an admin token" in result.stdout and "override_ratelimit" in result.stdout
    completions = fake_openai.requests_for(purpose="doctor")
    assert completions and completions[-1].body["max_tokens"] == 1
    assert devices_of(synapse, bot.user_id) == devices_before


def test_doctor_reads_and_reports_lifted_rate_limits_with_an_admin_token(start_bot, synapse):
    bot = start_bot()
    admin = synapse.admin.access_token

    limited = rpbot("doctor", "--config", bot.process.config_path, "--admin-token", admin)
    assert limited.returncode == 0, limited.stdout + limited.stderr
    assert verdicts(limited.stdout)["rate limits"] == "WARN" and "is rate limited" in limited.stdout

    httpx.post(
        f"{synapse.url}/_synapse/admin/v1/users/{bot.user_id}/override_ratelimit",
        json={"messages_per_second": 0, "burst_count": 0},
        headers={"Authorization": f"Bearer {admin}"},
    ).raise_for_status()
    lifted = rpbot("doctor", "--config", bot.process.config_path, env={"RPBOT_ADMIN_TOKEN": admin})
    assert verdicts(lifted.stdout)["rate limits"] == "OK" and "exempt" in lifted.stdout
    assert verdicts(lifted.stdout)["llm"] == "OK"  # the demo model


def test_doctor_reports_whether_the_bots_device_is_cross_signed_with_keys_the_homeserver_accepted(start_bot, synapse):
    bot = start_bot(encryption=True)
    data_dir = bot.process.config_path.parent / "data"
    device = json.loads((data_dir / "session.json").read_text())["device_id"]
    bot.process.stop()

    signed = rpbot("doctor", "--config", bot.process.config_path)
    assert verdicts(signed.stdout)["cross-signing"] == "OK", signed.stdout
    assert f"device {device} is cross-signed; the homeserver accepted the keys" in signed.stdout

    (data_dir / "crypto" / KEYS_FILE).unlink()  # the bot lost its keys: Element will not trust a new device
    lost = rpbot("doctor", "--config", bot.process.config_path)
    assert verdicts(lost.stdout)["cross-signing"] == "FAIL" and "restart the bot with matrix.password set" in lost.stdout

    bot.process.start()  # it replaces them and signs its device
    bot.process.stop()
    assert verdicts(rpbot("doctor", "--config", bot.process.config_path).stdout)["cross-signing"] == "OK"


def test_doctor_without_a_session_logs_in_and_leaves_no_device(synapse, tmp_path):
    account = synapse.register("rpbot")
    config = write_config(
        tmp_path / "rpbot.toml", homeserver=synapse.url, user_id=account.user_id, password=account.password,
        allowed_users=[], data_dir=tmp_path / "data",
    )
    devices_before = devices_of(synapse, account.user_id)

    result = rpbot("doctor", "--config", config)

    assert result.returncode == 0, result.stdout + result.stderr
    checks = verdicts(result.stdout)
    assert checks["login"] == "OK" and "password login" in result.stdout
    assert checks["data_dir"] == "WARN"  # not created yet
    assert checks["allowed_users"] == "WARN"  # nobody may use it
    assert devices_of(synapse, account.user_id) == devices_before
    assert not (tmp_path / "data").exists()


def test_doctor_fails_on_a_wrong_password(synapse, tmp_path):
    account = synapse.register("rpbot")
    config = write_config(
        tmp_path / "rpbot.toml", homeserver=synapse.url, user_id=account.user_id, password="not-the-password",
        allowed_users=[], data_dir=tmp_path / "data",
    )
    result = rpbot("doctor", "--config", config)
    assert result.returncode == 1
    assert verdicts(result.stdout)["login"] == "FAIL" and "1 failed: login" in result.stdout
