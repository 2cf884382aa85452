"""The embedded local homeserver: a throwaway or persistent Synapse on loopback.

Used by `rpbot dev` (data kept in `.rpbot-dev/`) and by the test fixtures in
`tests/support/` (data in a temporary directory). Synapse comes from the
`homeserver` extra and runs as a child process with SQLite; users are
registered through the shared-secret admin API, as an operator would.

Its config is the one `synapse --generate-config` writes, as a new operator
starts from, with only these differences: the listener (a free loopback port),
our log files, the relaxed rate limits when asked for, and any `settings` a
test names on purpose (tests/support/synapse.py lists them with their reasons).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapter.errors import AdapterError

SERVER_NAME = "localhost"

# Synapse's own rate limits are kept in the "default" flavour; the relaxed
# flavour lifts every limit a test or a single local player could hit.
_RELAXED_RATE_LIMITS = """
rc_message: {per_second: 1000, burst_count: 1000}
rc_registration: {per_second: 1000, burst_count: 1000}
rc_login:
  address: {per_second: 1000, burst_count: 1000}
  account: {per_second: 1000, burst_count: 1000}
  failed_attempts: {per_second: 1000, burst_count: 1000}
rc_room_creation: {per_second: 1000, burst_count: 1000}
rc_joins:
  local: {per_second: 1000, burst_count: 1000}
  remote: {per_second: 1000, burst_count: 1000}
rc_joins_per_room: {per_second: 1000, burst_count: 1000}
rc_invites:
  per_room: {per_second: 1000, burst_count: 1000}
  per_user: {per_second: 1000, burst_count: 1000}
  per_issuer: {per_second: 1000, burst_count: 1000}
rc_admin_redaction: {per_second: 1000, burst_count: 1000}
rc_3pid_validation: {per_second: 1000, burst_count: 1000}
rc_presence:
  per_user: {per_second: 1000, burst_count: 1000}
"""

_LOG_CONFIG = """
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {log_file}
    encoding: utf8
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""

# With `access_log`: every client request (who, method, path) in access.log, for tests that count requests.
_ACCESS_LOG_CONFIG = """
  access:
    class: logging.FileHandler
    formatter: precise
    filename: {access_file}
    encoding: utf8
loggers:
  synapse.access.http:
    level: INFO
    handlers: [access]
    propagate: false
"""


class HomeserverError(AdapterError, RuntimeError):
    """The local homeserver could not be set up, started or used."""

    player_summary = "The local homeserver could not be used"


@dataclass(frozen=True)
class RegisteredUser:
    user_id: str
    localpart: str
    password: str
    access_token: str
    device_id: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(
    data_dir: Path,
    port: int,
    *,
    relaxed_rate_limits: bool,
    access_log: bool = False,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write homeserver.yaml for a loopback Synapse: Synapse's own generated config plus LOCAL_DIFFERENCES.

    The base is what `--generate-config` writes (made once, kept in
    `homeserver.generated.yaml`, so secrets and the signing key survive restarts):
    every setting a real operator starts from. On top come only the listener
    (this port, loopback only), our log files, the relaxed rate limits when asked
    for, and `settings` a test names on purpose.
    """
    import yaml  # from the homeserver extra, as Synapse is

    data_dir.mkdir(parents=True, exist_ok=True)
    generated = data_dir / "homeserver.generated.yaml"
    if not generated.exists():
        result = subprocess.run(
            [
                sys.executable, "-m", "synapse.app.homeserver", "--generate-config", "--report-stats=no",
                "--server-name", SERVER_NAME, "--config-path", str(generated), "--data-directory", str(data_dir),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise HomeserverError(f"synapse --generate-config failed: {result.stderr[-2000:]}")
    config: dict[str, Any] = yaml.safe_load(generated.read_text())
    for listener in config["listeners"]:
        listener["port"] = port
        listener["bind_addresses"] = ["127.0.0.1"]
    log_config = _LOG_CONFIG.replace("{log_file}", str(data_dir / "homeserver.log"))
    if access_log:
        log_config = log_config.replace("root:", _ACCESS_LOG_CONFIG.replace("{access_file}", str(data_dir / "access.log")).strip("\n") + "\nroot:")
    (data_dir / "log.config").write_text(log_config)
    config["log_config"] = str(data_dir / "log.config")
    config.update(_legacy_secrets(data_dir))
    if relaxed_rate_limits:
        config.update(yaml.safe_load(_RELAXED_RATE_LIMITS))
    config.update(settings or {})
    path = data_dir / "homeserver.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def _legacy_secrets(data_dir: Path) -> dict[str, str]:
    """A data directory made before configs were generated keeps its secrets and signing key (its tokens stay valid)."""
    secrets_file, signing_key = data_dir / "secrets.txt", data_dir / "signing.key"
    if not (secrets_file.exists() and signing_key.exists()):
        return {}
    shared_secret, macaroon, form = secrets_file.read_text().split()
    return {
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": macaroon,
        "form_secret": form,
        "signing_key_path": str(signing_key),
    }


class LocalHomeserver:
    """A Synapse child process on 127.0.0.1 with SQLite storage."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        relaxed_rate_limits: bool = True,
        access_log: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.relaxed_rate_limits = relaxed_rate_limits
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = write_config(
            self.data_dir, self.port, relaxed_rate_limits=relaxed_rate_limits, access_log=access_log, settings=settings
        )

    @property
    def access_log(self) -> Path:
        """Client requests, one line each (only with `access_log=True`)."""
        return self.data_dir / "access.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def shared_secret(self) -> str:
        import yaml

        return str(yaml.safe_load(self.config_path.read_text())["registration_shared_secret"])

    def start(self, timeout_s: float = 60.0) -> None:
        stderr_log = open(self.data_dir / "stderr.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            stdout=stderr_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
        )
        stderr_log.close()
        (self.data_dir / "synapse.pid").write_text(f"{self.process.pid}\n")
        self.wait_until_ready(timeout_s)

    def wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise HomeserverError(f"Synapse exited with {self.process.returncode}; see {self.data_dir}/stderr.log")
            try:
                if httpx.get(f"{self.url}/_matrix/client/versions", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise HomeserverError(f"Synapse did not answer within {timeout_s}s; see {self.data_dir}")

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        (self.data_dir / "synapse.pid").unlink(missing_ok=True)

    def register(self, localpart: str, password: str | None = None, *, admin: bool = False) -> RegisteredUser:
        """Register a user with the shared-secret admin API; an existing user is logged in instead."""
        password = password or secrets.token_urlsafe(12)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = httpx.get(endpoint, timeout=10).json()["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(), b"admin" if admin else b"notadmin"]))
        response = httpx.post(
            endpoint,
            json={"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac.hexdigest()},
            timeout=30,
        )
        if response.status_code == 400 and response.json().get("errcode") == "M_USER_IN_USE":
            return self.login(localpart, password)
        if response.status_code != 200:
            raise HomeserverError(f"registering {localpart} failed: {response.status_code} {response.text}")
        body = response.json()
        return RegisteredUser(body["user_id"], localpart, password, body["access_token"], body["device_id"])

    def login(self, localpart: str, password: str) -> RegisteredUser:
        response = httpx.post(
            f"{self.url}/_matrix/client/v3/login",
            json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": localpart}, "password": password},
            timeout=30,
        )
        if response.status_code != 200:
            raise HomeserverError(f"login of {localpart} failed: {response.status_code} {response.text}")
        body = response.json()
        return RegisteredUser(body["user_id"], localpart, password, body["access_token"], body["device_id"])

    def __enter__(self) -> LocalHomeserver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
