"""The Element-like player client (tests/element/client.mjs: matrix-js-sdk, Rust crypto) driven from Python.

`ElementClient` starts the Node process for an account (its registered device and token),
which sets up the account's cross-signing as Element does and syncs. Room membership is
done over the plain Client-Server API by `MatrixUser` with the same token (no crypto is
involved in joining); the Node client sends and reads the encrypted messages. Each message
it sees is a `SeenMessage`: decrypted with a shield, or failed with the reason js-sdk gives
(`UNSIGNED_SENDER_DEVICE` when the sending device is not signed by its owner, in the strict mode).
With `recovery_key`, the client is an operator signing in to the bot's account and opening its
secret storage with the recovery key, as Element's "verify with recovery key" does.
"""

from __future__ import annotations

import itertools
import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.devserver import RegisteredUser

CLIENT_DIR = Path(__file__).resolve().parents[1] / "element"


def ensure_node_client() -> None:
    """Install the client's pinned packages (`npm ci`, as `make test` does) if they are not there yet."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("the Element test client needs Node.js 20 or later with npm (apt-get install nodejs npm)")
    if not (CLIENT_DIR / "node_modules" / "matrix-js-sdk").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT_DIR, check=True)


@dataclass(frozen=True)
class SeenMessage:
    room_id: str
    event_id: str
    sender: str
    body: str | None
    failure: str | None  # js-sdk's DecryptionFailureCode, or None when decrypted
    sender_device: str | None
    shield: str | None  # "NONE" (nothing to warn about), "GREY" or "RED"
    shield_reason: str | None
    encrypted: bool = True
    sender_name: str | None = None  # as Element shows the sender of this line: its room member at the event
    sender_avatar: str | None = None
    msgtype: str | None = None
    edits: str | None = None  # the event this one replaces, for an edit
    profile: dict[str, Any] | None = None  # the per-message profile (MSC4144), for clients that show it
    mentions: dict[str, Any] | None = None


class ElementClient:
    def __init__(self, homeserver: str, account: RegisteredUser, log_path: Path, *, strict: bool = True, recovery_key: str | None = None) -> None:
        self.user_id = account.user_id
        self.device_id = account.device_id
        self._ids = itertools.count(1)
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[SeenMessage] = []
        self._results: dict[int, dict[str, Any]] = {}
        args = [homeserver, account.user_id, account.device_id, account.access_token, account.password]
        if recovery_key is not None:  # the operator, opening the account's secret storage instead of making keys
            args.append(f"--recovery-key={recovery_key}")
        elif not strict:
            args.append("--all-devices")
        self._stderr = open(log_path, "ab")
        self.process = subprocess.Popen(
            ["node", str(CLIENT_DIR / "client.mjs"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=CLIENT_DIR,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self._wait(lambda line: line.get("kind") == "ready", 60, "the client to be ready")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                self._lines.put(json.loads(raw))
            except json.JSONDecodeError:
                continue

    def _drain(self, timeout_s: float) -> dict[str, Any] | None:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if line.get("kind") == "message":
            fields = {k: line.get(k) for k in SeenMessage.__dataclass_fields__}
            self.seen = [m for m in self.seen if m.event_id != line["event_id"]] + [SeenMessage(**fields)]
        elif line.get("kind") == "result":
            self._results[line["id"]] = line
        return line

    def _wait(self, accept: Callable[[dict[str, Any]], bool], timeout_s: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self._drain(0.2)
            if line is not None and accept(line):
                return line
            if self.process.poll() is not None:
                raise AssertionError(f"the Element client exited ({self.process.returncode}) while waiting for {what}")
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; seen: {self.seen}")

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 60.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            self._drain(0.2)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; seen: {self.seen}")

    def pump(self, seconds: float) -> None:
        """Take in what the client reports for `seconds` (to show that something does not come)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._drain(0.2)

    def _command(self, cmd: str, timeout_s: float = 60.0, **fields: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"id": command_id, "cmd": cmd, **fields}) + "\n").encode())
        self.process.stdin.flush()
        result = self.wait_for(lambda: self._results.pop(command_id, None), timeout_s, f"the answer to {cmd}")
        if result.get("error"):
            raise AssertionError(f"{cmd} failed in the Element client: {result['error']}")
        return result

    def send_text(self, room_id: str, body: str) -> str:
        return self._command("send", room_id=room_id, body=body)["event_id"]

    def join(self, room_id: str) -> None:
        """Join a room, as Element's Accept (an invite) or Join (a room of the Space) does."""
        self._command("join", room_id=room_id)

    def rooms(self) -> dict[str, dict[str, Any]]:
        """room id -> {"membership", "highlights" (the red badge count), "settings" (Element's room settings)}."""
        return {room["room_id"]: room for room in self._command("rooms")["rooms"]}

    def devices_of(self, user_id: str, *, download: bool = True) -> set[str]:
        """The devices of `user_id` the client knows (from its device list, as it would encrypt to them);
        `download=False`: only those its crypto tracks from the encrypted rooms it shares with them."""
        return set(self._command("devices", user_id=user_id, download=download)["devices"])

    def verifies(self, user_id: str, device_id: str) -> bool:
        """Whether the client shows the device as verified by cross-signing."""
        result = self._command("verified", user_id=user_id, device_id=device_id)
        return bool(result["verified"] and result["cross_signing_verified"])

    def shown(self, room_id: str, sender: str) -> list[SeenMessage]:
        """Messages from `sender` the client decrypted and shows without a red shield."""
        return [m for m in self.seen if m.room_id == room_id and m.sender == sender and m.failure is None and m.shield != "RED"]

    def failed(self, room_id: str, sender: str) -> list[SeenMessage]:
        return [m for m in self.seen if m.room_id == room_id and m.sender == sender and m.failure is not None]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._command("stop", timeout_s=10)
            except AssertionError:
                pass
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._stderr.close()
