"""Every command in the README runs, as written, against a real Synapse.

The README's shell blocks are parsed and every command in them is classified;
an unknown command fails `test_every_readme_command_is_exercised`. The
walk-through test then runs them in the README's order, in a scratch working
directory, with only the example values replaced (homeserver URL, user ids,
config path of the test homeserver): register the bot, create a user through
the admin API, lift its rate limits, `rpbot doctor`, `rpbot run` (with a player
onboarded and a line played), `rpbot reconcile --dry-run`, `rpbot export`, and the
backup. `make dev` is exercised by tests/adapter/test_dev_command.py (it runs
`rpbot dev`, which `make dev` calls); `make test` runs this suite; the install
line is what `make` does (pip install into .venv) on first use.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from adapter.cli import build_parser
from tests.adapter.matrix.conftest import RunningBot
from tests.operator.conftest import onboard
from tests.support.bot_process import REPO_ROOT, write_config
from tests.support.synapse import SynapseServer

README = REPO_ROOT / "README.md"
EXAMPLE_SERVER = "https://matrix.example.org"
COVERED_ELSEWHERE = {
    "make dev": "tests/adapter/test_dev_command.py",
    "make test": "tests/operator/test_readme_commands.py",  # this suite is what it runs
}


def readme_commands() -> list[str]:
    """The commands of the README's ```sh blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


def kind_of(command: str) -> str | None:
    words = shlex.split(command)
    program = Path(words[0]).name
    if program == "make" and command in COVERED_ELSEWHERE:
        return command
    if program == "rpbot":
        return "rpbot " + build_parser().parse_args(words[1:]).command
    if program in ("register_new_matrix_user", "sqlite3"):
        return program
    if program == "curl":
        return "curl " + ("override_ratelimit" if "override_ratelimit" in command else "create user")
    if program.startswith("python3") and "-m venv" in command:
        return "install"
    return None


def test_every_readme_command_is_exercised():
    kinds = {command: kind_of(command) for command in readme_commands()}
    assert None not in kinds.values(), [c for c, k in kinds.items() if k is None]
    assert {"rpbot doctor", "rpbot run", "rpbot reconcile", "rpbot export"} <= set(kinds.values())
    for path in COVERED_ELSEWHERE.values():
        assert (REPO_ROOT / path).is_file()


def test_every_rpbot_form_in_the_readme_parses_and_has_help():
    parser = build_parser()
    for command in readme_commands():
        words = shlex.split(command)
        if Path(words[0]).name != "rpbot":
            continue
        args = parser.parse_args(words[1:])
        assert args.command in ("run", "doctor", "reconcile", "export", "dev")
        result = subprocess.run(
            [sys.executable, "-m", "adapter.cli", args.command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0 and "--config" in result.stdout


def _shell(command: str, cwd: Path, timeout_s: float = 90, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, shell=True, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout_s,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **env},
    )


def _run_bot_until_played(command: str, cwd: Path, server: SynapseServer, bot_user_id: str) -> str:
    """Start `rpbot run` as the README says, onboard a player, play a line, SIGTERM; the story room's platform id."""
    log_path = cwd / "rpbot.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(shlex.split(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while "ready as" not in log_path.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        player = RunningBot(None, bot_user_id, server).player()  # type: ignore[arg-type]
        _, _, story = onboard(RunningBot(None, bot_user_id, server), player)  # type: ignore[arg-type]
        player.send_text(story, "I open the door of the map room.")
        player.wait_for(lambda: len(player.final_texts(story, bot_user_id)) >= 2, timeout_s=60, what="a reply")
        return player.state_event(story, "org.rpbot.room")["platform_chat_id"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()[-3000:]


@pytest.mark.synapse
def test_the_readme_walk_through_runs_as_written(synapse: SynapseServer, tmp_path):
    rpbot = f"{sys.executable} -m adapter.cli"
    suffix = f"{os.getpid()}-{time.monotonic_ns() % 100000}"
    bot_name, other_name = f"rpbot-readme-{suffix}", f"rpbot-admin-api-{suffix}"
    bot_id = f"@{bot_name}:localhost"
    admin_env = {"ADMIN_TOKEN": synapse.admin.access_token}

    def localise(command: str) -> str:
        return (
            command.replace(".venv/bin/rpbot", rpbot)
            .replace("/etc/matrix-synapse/homeserver.yaml", str(synapse.server.config_path))
            .replace("http://localhost:8008", synapse.url)
            .replace("-u rpbot ", f"-u {bot_name} ")
            .replace(EXAMPLE_SERVER, synapse.url)
        )

    toml_block = re.search(r"```toml\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    example = tomllib.loads(toml_block)
    assert set(example) == {"matrix", "storage", "llm"}
    write_config(
        tmp_path / "rpbot.toml", homeserver=synapse.url, user_id=bot_id, password="a-long-password",
        allowed_users=["@player-*:localhost"], data_dir=Path(example["storage"]["data_dir"]),
    )
    platform_chat_id = None
    for command in readme_commands():
        kind = kind_of(command)
        if kind in COVERED_ELSEWHERE or kind == "install":
            continue
        if kind == "curl create user":
            command = command.replace("@rpbot:example.org", f"@{other_name}:localhost")
        else:
            command = command.replace("@rpbot:example.org", bot_id)
        command = localise(command)
        if kind == "rpbot run" and "--log-format json" not in command:
            platform_chat_id = _run_bot_until_played(command, tmp_path, synapse, bot_id)
            continue
        if kind == "rpbot run":
            continue  # the JSON-logging form runs in tests/operator/test_logs.py
        if kind == "rpbot export":
            assert platform_chat_id is not None
            command = command.replace("mx-3", platform_chat_id)
        result = _shell(command, tmp_path, **admin_env)
        assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
        if kind == "curl create user":
            login = httpx.post(f"{synapse.url}/_matrix/client/v3/login", json={
                "type": "m.login.password", "identifier": {"type": "m.id.user", "user": other_name}, "password": "a-long-password"})
            assert login.status_code == 200
        if kind.startswith("curl"):
            assert "errcode" not in result.stdout, result.stdout  # curl exits 0 on HTTP errors
        if kind == "rpbot doctor":
            assert "FAIL" not in result.stdout
        if kind == "rpbot reconcile":
            assert "a restart would rebuild nothing" in result.stdout
    assert platform_chat_id is not None
    assert re.search(r"\*\*player-[^*]+:\*\* I open the door of the map room\.", (tmp_path / "story.md").read_text())
    assert (tmp_path / "engine-backup.sqlite3").stat().st_size > 0
    check = _shell(f"{rpbot} doctor --config rpbot.toml --admin-token \"$ADMIN_TOKEN\"", tmp_path, **admin_env)
    assert "exempt from message rate limits" in check.stdout, check.stdout
