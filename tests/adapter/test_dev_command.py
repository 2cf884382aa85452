"""`rpbot dev`: homeserver and bot come up, sign-in details are printed, Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from adapter.devserver import RegisteredUser, free_port
from tests.support.bot_process import REPO_ROOT
from tests.support.matrix_user import MatrixUser

pytestmark = pytest.mark.synapse


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); check its state.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_dev_brings_up_homeserver_and_bot_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPBOT_")}
    out_path = tmp_path / "dev.out"
    with open(out_path, "wb") as out:
        dev = subprocess.Popen(
            [sys.executable, "-m", "adapter.cli", "dev", "--dir", str(tmp_path / "dev"), "--port", str(port)],
            cwd=tmp_path,  # no rpbot.toml here: the offline demo model
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env, PYTHONPATH=str(REPO_ROOT)),
        )
    synapse_pid = 0
    try:
        deadline = time.monotonic() + 90
        while "ready as" not in out_path.read_text() and time.monotonic() < deadline:
            assert dev.poll() is None, out_path.read_text()
            time.sleep(0.2)
        output = out_path.read_text()
        assert "ready as" in output, output
        assert f"homeserver:  http://127.0.0.1:{port}" in output
        username = re.search(r"username:\s+(\S+)", output).group(1)
        password = re.search(r"password:\s+(\S+)", output).group(1)
        bot_id = re.search(r"then invite: (\S+)", output).group(1)
        assert "offline demo model" in output
        synapse_pid = int((tmp_path / "dev" / "synapse" / "synapse.pid").read_text())

        # The printed login works, and the bot answers the printed player's invite.
        login = httpx.post(
            f"http://127.0.0.1:{port}/_matrix/client/v3/login",
            json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": username}, "password": password},
        ).json()
        account = RegisteredUser(login["user_id"], username, password, login["access_token"], login["device_id"])
        player = MatrixUser(f"http://127.0.0.1:{port}", account)
        player.create_room(invite=[bot_id])
        player.wait_for_invite(room_type="m.space", timeout_s=60)

        assert _alive(synapse_pid)
    finally:
        dev.send_signal(signal.SIGINT)
        returncode = dev.wait(60)
    assert returncode == 0, out_path.read_text()
    assert synapse_pid and not _alive(synapse_pid)
    assert not (tmp_path / "dev" / "synapse" / "synapse.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_matrix/client/versions", timeout=2)
