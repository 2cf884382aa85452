"""Running the real `rpbot run` as a child process in tests, as an operator would.

`BotProcess` writes a TOML config, starts `python -m adapter.cli run`, waits
for "ready" in its log, and stops it with SIGTERM (or SIGKILL, for crash
tests). Its log is kept beside the data directory for failures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_config(
    path: Path, *, homeserver: str, user_id: str, password: str, allowed_users: list[str], data_dir: Path,
    llm: dict[str, Any] | None = None, encryption: bool = False, database_url: str = "",
) -> Path:
    lines = [
        "[matrix]",
        f"homeserver = {json.dumps(homeserver)}",
        f"user_id = {json.dumps(user_id)}",
        f"password = {json.dumps(password)}",
        f"allowed_users = {json.dumps(allowed_users)}",
        f"encryption = {'true' if encryption else 'false'}",
        "",
        "[storage]",
        f"data_dir = {json.dumps(str(data_dir))}",
        f"database_url = {json.dumps(database_url)}",
        "",
        "[llm]",
    ]
    settings = llm or {"provider": "demo"}
    for key, value in settings.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {json.dumps(value)}")
    for key, value in settings.items():
        if isinstance(value, dict):  # a table of its own, such as [llm.sampling]
            lines += ["", f"[llm.{key}]", *(f"{name} = {json.dumps(item)}" for name, item in value.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class BotProcess:
    def __init__(self, config_path: Path, log_path: Path, *, log_level: str = "DEBUG", env: dict[str, str] | None = None) -> None:
        self.config_path = config_path
        self.log_level = log_level
        self.extra_env = env or {}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> BotProcess:
        readies_before = self.log_text().count("ready as")
        log = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "adapter.cli", "--log-level", self.log_level, "run", "--config", str(self.config_path)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.wait_for_log("ready as", timeout_s, count_before=readies_before)
        return self

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout_s: float, *, count_before: int = 0) -> None:
        """Wait until `needle` appears in the log more than `count_before` times."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log_text().count(needle) > count_before:
                return
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"rpbot exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            time.sleep(0.1)
        raise AssertionError(f"rpbot not {needle!r} within {timeout_s}s:\n{self.log_text()[-4000:]}")

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
