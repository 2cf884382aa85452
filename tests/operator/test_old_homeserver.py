"""A homeserver that offers no room version with restricted joins: a clear refusal from doctor and at start, nothing made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adapter.matrix.conftest import rooms_created_by
from tests.operator.conftest import rpbot
from tests.operator.test_doctor import verdicts
from tests.support.bot_process import write_config
from tests.support.capabilities_proxy import CapabilitiesProxy
from tests.support.matrix_user import MatrixUser
from tests.support.synapse import SynapseServer

pytestmark = pytest.mark.synapse

OLD_SERVER = {"capabilities": {"m.room_versions": {"default": "6", "available": {str(v): "stable" for v in range(1, 8)}}}}


def test_doctor_and_start_refuse_a_homeserver_without_restricted_joins(synapse: SynapseServer, tmp_path: Path) -> None:
    account = synapse.register("rpbot")
    player = MatrixUser(synapse.url, synapse.register("player"))
    with CapabilitiesProxy(synapse.url, OLD_SERVER) as old_homeserver:
        config = write_config(
            tmp_path / "rpbot.toml",
            homeserver=old_homeserver.url,
            user_id=account.user_id,
            password=account.password,
            allowed_users=["@player-*:localhost"],
            data_dir=tmp_path / "data",
            encryption=True,  # the default: no account keys may be published before the refusal either
        )
        invite_room = player.create_room(invite=[account.user_id])  # waiting for the bot, as a player would be

        doctor = rpbot("doctor", "--config", config)
        assert doctor.returncode == 1, doctor.stdout
        assert verdicts(doctor.stdout)["room versions"] == "FAIL"
        assert "no stable room version with restricted joins" in doctor.stdout
        assert "1, 2, 3, 4, 5, 6, 7" in doctor.stdout

        run = rpbot("run", "--config", config, timeout_s=60)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "rpbot: cannot start: the homeserver offers no stable room version with restricted joins" in run.stderr
        assert "Traceback" not in run.stderr

    assert rooms_created_by(synapse, account.user_id) == []  # no Space, no half-made onboarding
    assert not (tmp_path / "data" / "recovery-key.txt").exists()
    assert account.user_id not in player.keys_query(account.user_id).get("master_keys", {})  # no cross-signing keys published either
    assert player.members(invite_room)[account.user_id] == "invite"  # not joined either: the invite waits for a fixed server
