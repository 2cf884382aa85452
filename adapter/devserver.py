"""The embedded local homeserver: a throwaway or persistent Synapse on loopback.

Used by `rpbot dev` (data kept in `.rpbot-dev/`) and by the test fixtures in
`tests/support/` (data in a temporary directory). Synapse comes from the
`homeserver` extra and runs as a child process with SQLite; users are
registered through the shared-secret admin API, as an operator would.
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

import httpx

SERVER_NAME = "localhost"

# Synapse's own defaults (1.163) are kept in the "default" flavour; the relaxed
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


class HomeserverError(RuntimeError):
    """The local homeserver could not be set up, started or used."""


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


def write_config(data_dir: Path, port: int, *, relaxed_rate_limits: bool, access_log: bool = False) -> Path:
    """Write homeserver.yaml (once) for a loopback Synapse with SQLite; return its path.

    An existing config keeps its secrets; only the port is rewritten.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets_file = data_dir / "secrets.txt"
    if secrets_file.exists():
        shared_secret, macaroon, form = secrets_file.read_text().split()
    else:
        shared_secret, macaroon, form = (secrets.token_hex(24) for _ in range(3))
        secrets_file.write_text(f"{shared_secret} {macaroon} {form}\n")
        secrets_file.chmod(0o600)
    log_config = _LOG_CONFIG.replace("{log_file}", str(data_dir / "homeserver.log"))
    if access_log:
        log_config = log_config.replace("root:", _ACCESS_LOG_CONFIG.replace("{access_file}", str(data_dir / "access.log")).strip("\n") + "\nroot:")
    (data_dir / "log.config").write_text(log_config)
    config = f"""
server_name: "{SERVER_NAME}"
public_baseurl: "http://127.0.0.1:{port}/"
pid_file: "{data_dir / 'homeserver.pid'}"
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: "{data_dir / 'homeserver.db'}"
log_config: "{data_dir / 'log.config'}"
media_store_path: "{data_dir / 'media_store'}"
signing_key_path: "{data_dir / 'signing.key'}"
registration_shared_secret: "{shared_secret}"
macaroon_secret_key: "{macaroon}"
form_secret: "{form}"
report_stats: false
enable_registration: false
trusted_key_servers: []
suppress_key_server_warning: true
default_room_version: "10"
presence:
  enabled: false
"""
    if relaxed_rate_limits:
        config += _RELAXED_RATE_LIMITS
    path = data_dir / "homeserver.yaml"
    path.write_text(config)
    return path


class LocalHomeserver:
    """A Synapse child process on 127.0.0.1 with SQLite storage."""

    def __init__(self, data_dir: Path, *, port: int | None = None, relaxed_rate_limits: bool = True, access_log: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.relaxed_rate_limits = relaxed_rate_limits
        self.process: subprocess.Popen[bytes] | None = None
        self.config_path = write_config(self.data_dir, self.port, relaxed_rate_limits=relaxed_rate_limits, access_log=access_log)

    @property
    def access_log(self) -> Path:
        """Client requests, one line each (only with `access_log=True`)."""
        return self.data_dir / "access.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def shared_secret(self) -> str:
        return (self.data_dir / "secrets.txt").read_text().split()[0]

    def start(self, timeout_s: float = 60.0) -> None:
        if not (self.data_dir / "signing.key").exists():
            subprocess.run(
                [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path), "--generate-keys"],
                check=True,
                capture_output=True,
            )
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

    def __enter__(self) -> "LocalHomeserver":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
