"""Cross-signing of the bot's own account, so that Element talks to its device in encrypted rooms.

Element (matrix-js-sdk's Rust crypto, "only signed devices") neither shares room keys with
nor shows messages from a device that its owner has not cross-signed. At start, with
encryption on, `ensure_device_cross_signed` makes the account's keys and the bot's device
agree:

- the master, self-signing and user-signing private keys live in
  `data_dir/crypto/cross_signing.json` (mode 0600) and are reused across restarts;
- when the homeserver has none, they are made and uploaded (`/keys/device_signing/upload`,
  with user-interactive auth by the bot's password when the homeserver asks for it);
- when the homeserver has keys the bot does not hold (its data was lost, or someone reset
  them in a client), they are replaced with the password, and that is logged; without a
  password nothing is changed and the operator is told what to do;
- the current device (a new one after `session.json` is lost) is signed with the
  self-signing key (`/keys/signatures/upload`) unless it already is;
- after new keys are uploaded they are put in secret storage under a new recovery key,
  printed once and written to `data_dir/recovery-key.txt` for the operator (see README).

Every step is checked against the homeserver's answer; a step that fails raises
`CrossSigningError` saying what the operator can do.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from signedjson.key import encode_signing_key_base64, generate_signing_key
from signedjson.types import SigningKey
from unpaddedbase64 import encode_base64

from adapter.errors import AdapterError
from adapter.matrix.secret_storage import SecretStorage
from adapter.matrix.signatures import Json, cross_signing_key, public_key, sign, signed_by, signing_key_from_seed

log = logging.getLogger(__name__)

KEYS_FILE = "cross_signing.json"
RECOVERY_KEY_FILE = "recovery-key.txt"
USAGES = ("master", "self_signing", "user_signing")


class CrossSigningError(AdapterError, RuntimeError):
    """The homeserver did not take the keys or signatures; the message says what the operator can do."""

    player_summary = "The bot's encryption keys could not be published"


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(*(signing_key_from_seed(encode_base64(bytes(generate_signing_key("new")))) for _ in USAGES))

    def by_usage(self) -> dict[str, SigningKey]:
        return dict(zip(USAGES, (self.master, self.self_signing, self.user_signing), strict=True))

    def upload_body(self, user_id: str) -> Json:
        """The body of `/keys/device_signing/upload`: each public key, the sub-keys signed by the master key."""
        body: Json = {}
        for usage, key in self.by_usage().items():
            obj: Json = {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{public_key(key)}": public_key(key)}}
            body[f"{usage}_key"] = obj if usage == "master" else sign(obj, user_id, self.master)
        return body

    def secrets(self) -> dict[str, str]:
        """Secret-storage name -> private key (unpadded base64 of the seed), as Element reads them."""
        return {f"m.cross_signing.{usage}": encode_signing_key_base64(key) for usage, key in self.by_usage().items()}


def load_keys(crypto_dir: Path, user_id: str) -> CrossSigningKeys | None:
    try:
        saved = json.loads((crypto_dir / KEYS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if saved.get("user_id") != user_id:
        return None
    return CrossSigningKeys(*(signing_key_from_seed(saved[usage]) for usage in USAGES))


def save_keys(crypto_dir: Path, user_id: str, keys: CrossSigningKeys) -> None:
    crypto_dir.mkdir(parents=True, exist_ok=True)
    path = crypto_dir / KEYS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"user_id": user_id, **{usage: encode_signing_key_base64(k) for usage, k in keys.by_usage().items()}}, out)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


class AccountKeys:
    """The bot account's keys as the homeserver knows them (one `/keys/query`)."""

    def __init__(self, http: httpx.AsyncClient, user_id: str, headers: dict[str, str] | None = None) -> None:
        self.http = http
        self.user_id = user_id
        self.headers = headers or {}
        self.query: Json = {}

    async def refresh(self) -> AccountKeys:
        response = await self.http.post("/_matrix/client/v3/keys/query", json={"device_keys": {self.user_id: []}}, headers=self.headers)
        _raise_for(response, "reading the account's keys (/keys/query)")
        self.query = response.json()
        return self

    def public(self, usage: str) -> str | None:
        return cross_signing_key(self.query.get(f"{usage}_keys", {}).get(self.user_id), usage)

    def device(self, device_id: str) -> Json | None:
        return self.query.get("device_keys", {}).get(self.user_id, {}).get(device_id)

    def held_by(self, keys: CrossSigningKeys) -> bool:
        return self.public("master") == public_key(keys.master) and self.public("self_signing") == public_key(keys.self_signing)

    def device_signed(self, device_id: str) -> bool:
        device, ssk, master = self.device(device_id), self.public("self_signing"), self.public("master")
        ssk_obj = self.query.get("self_signing_keys", {}).get(self.user_id)
        return bool(device and ssk and master and signed_by(ssk_obj, self.user_id, master) and signed_by(device, self.user_id, ssk))


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise CrossSigningError(f"{what} failed: {response.status_code} {response.text[:300]}")


async def upload_keys(http: httpx.AsyncClient, user_id: str, keys: CrossSigningKeys, password: str) -> None:
    """Publish the public keys; answer the homeserver's password challenge if it sends one."""
    body = keys.upload_body(user_id)
    response = await http.post("/_matrix/client/v3/keys/device_signing/upload", json=body)
    if response.status_code == 401 and "flows" in response.json():
        if not password:
            raise CrossSigningError(
                "the homeserver wants the bot's password to publish cross-signing keys, and only matrix.access_token is "
                "configured: set matrix.password (RPBOT_MATRIX__PASSWORD) and restart, or, on Synapse, let an admin allow it "
                f"once with POST /_synapse/admin/v1/users/{user_id}/_allow_cross_signing_replacement_without_uia"
            )
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
            "session": response.json().get("session"),
        }
        response = await http.post("/_matrix/client/v3/keys/device_signing/upload", json={**body, "auth": auth})
    _raise_for(response, "publishing cross-signing keys (/keys/device_signing/upload)")


async def sign_device(http: httpx.AsyncClient, user_id: str, device: Json, keys: CrossSigningKeys) -> None:
    signed = sign({k: v for k, v in device.items() if k != "unsigned"}, user_id, keys.self_signing)
    response = await http.post("/_matrix/client/v3/keys/signatures/upload", json={user_id: {device["device_id"]: signed}})
    _raise_for(response, "signing the bot's device (/keys/signatures/upload)")
    failures = response.json().get("failures") or {}
    if failures:
        raise CrossSigningError(f"the homeserver refused the device signature: {failures}")


async def store_in_secret_storage(http: httpx.AsyncClient, user_id: str, keys: CrossSigningKeys, data_dir: Path) -> Path:
    """Put the private keys in secret storage under a new recovery key; write that key for the operator."""
    storage = SecretStorage.new()
    for event_type, content in storage.account_data(keys.secrets()).items():
        response = await http.put(f"/_matrix/client/v3/user/{quote(user_id)}/account_data/{event_type}", json=content)
        _raise_for(response, f"writing {event_type} to account data")
    path = data_dir / RECOVERY_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(
            f"Recovery key of {user_id} (secret storage):\n\n    {storage.recovery_key}\n\n"
            "Sign in to the bot's account in Element and choose to verify with a recovery key, then type it in:\n"
            "Element then shows the bot's device as verified. Keep it somewhere safe and delete this file.\n"
        )
    # Printed, not logged: the operator sees it once on the console; log collectors never hold it.
    print(f"rpbot: new recovery key for {user_id}: {storage.recovery_key}  (also in {path}; delete it once it is kept safe)", flush=True)
    return path


async def ensure_device_cross_signed(
    http: httpx.AsyncClient, *, user_id: str, device_id: str, identity_key: str, crypto_dir: Path, data_dir: Path, password: str
) -> None:
    """Make the account's cross-signing keys the ones in `crypto_dir` and sign `device_id` with them.

    `http` carries the bot's access token; `identity_key` is the device's own Ed25519 key, so
    that a device listed under our id with other keys is never signed.
    """
    account = await AccountKeys(http, user_id).refresh()
    keys = load_keys(crypto_dir, user_id)
    uploaded = False
    if keys is None or not account.held_by(keys):
        if account.public("master") is not None:
            if not password:
                raise CrossSigningError(
                    "the homeserver has cross-signing keys for the bot that it does not hold (its data was lost or the keys "
                    "were reset elsewhere); set matrix.password (RPBOT_MATRIX__PASSWORD) so the bot can replace them, and restart"
                )
            log.warning("the homeserver has cross-signing keys for %s that this bot does not hold: replacing them", user_id)
        if keys is None:  # keys the bot holds are published again as they are
            keys = CrossSigningKeys.generate()
        save_keys(crypto_dir, user_id, keys)  # before the upload: a crash after it must not lose the keys
        await upload_keys(http, user_id, keys, password)
        uploaded = True
        log.info("published cross-signing keys for %s (master %s)", user_id, public_key(keys.master))
        await account.refresh()
        if not account.held_by(keys):
            raise CrossSigningError("the homeserver accepted the cross-signing keys but does not list them")
    if uploaded or not await _secret_storage_holds(http, user_id):
        await store_in_secret_storage(http, user_id, keys, data_dir)
    if not account.device_signed(device_id):
        device = account.device(device_id)
        if device is None or device.get("keys", {}).get(f"ed25519:{device_id}") != identity_key:
            raise CrossSigningError(f"the homeserver does not list device {device_id} with this bot's keys; not signing it")
        await sign_device(http, user_id, device, keys)
        await account.refresh()
        if not account.device_signed(device_id):
            raise CrossSigningError(f"device {device_id} was signed but the homeserver does not show the signature")
        log.info("cross-signed device %s of %s", device_id, user_id)


async def _secret_storage_holds(http: httpx.AsyncClient, user_id: str) -> bool:
    """Whether account data has a default secret-storage key holding the master key (a crash can leave it unwritten)."""
    default = await http.get(f"/_matrix/client/v3/user/{quote(user_id)}/account_data/m.secret_storage.default_key")
    master = await http.get(f"/_matrix/client/v3/user/{quote(user_id)}/account_data/m.cross_signing.master")
    if default.status_code != 200 or master.status_code != 200:
        return False
    key_id: Any = default.json().get("key")
    return key_id in master.json().get("encrypted", {})
