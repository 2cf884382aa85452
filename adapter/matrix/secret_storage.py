"""Secret storage (SSSS) for the bot's cross-signing keys, opened with a recovery key.

This is the Matrix spec's `m.secret_storage.v1.aes-hmac-sha2`: a random 32-byte key,
described in account data `m.secret_storage.key.<id>` (with a check value: 32 zero
bytes encrypted under the name ""), made the default by `m.secret_storage.default_key`;
each secret (`m.cross_signing.master` and so on, the unpadded base64 of the private key)
is stored in account data under its own name, encrypted with AES-CTR-256 and
authenticated with HMAC-SHA-256, both keys drawn by HKDF-SHA-256 from the storage key
with the secret's name as info. The recovery key an operator types into Element is the
storage key in base58, behind the prefix 0x8B 0x01 and followed by a parity byte.
AES, HKDF and HMAC come from pycryptodome (which matrix-nio already depends on).
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from dataclasses import dataclass

from Crypto.Cipher import AES
from Crypto.Hash import HMAC, SHA256
from Crypto.Protocol.KDF import HKDF

from adapter.errors import AdapterError

ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
RECOVERY_KEY_PREFIX = b"\x8b\x01"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class RecoveryKeyError(AdapterError, ValueError):
    """A recovery key that is mistyped: wrong characters, prefix, length or parity."""

    player_summary = "A recovery key was mistyped"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(storage_key: bytes, name: str) -> tuple[bytes, bytes]:
    derived = HKDF(storage_key, 64, b"\x00" * 32, SHA256, context=name.encode())
    return derived[:32], derived[32:]


def encrypt_secret(storage_key: bytes, name: str, plaintext: str, iv: bytes | None = None) -> dict[str, str]:
    """`{"iv", "ciphertext", "mac"}` (base64) of `plaintext` stored under `name`."""
    aes_key, mac_key = _derive(storage_key, name)
    if iv is None:
        fresh = bytearray(os.urandom(16))
        fresh[8] &= 0x7F  # bit 63 clear: implementations differ in how the counter overflows
        iv = bytes(fresh)
    ciphertext = AES.new(aes_key, AES.MODE_CTR, initial_value=iv, nonce=b"").encrypt(plaintext.encode())
    mac = HMAC.new(mac_key, ciphertext, SHA256).digest()
    return {"iv": _b64(iv), "ciphertext": _b64(ciphertext), "mac": _b64(mac)}


def decrypt_secret(storage_key: bytes, name: str, payload: dict[str, str]) -> str:
    aes_key, mac_key = _derive(storage_key, name)
    ciphertext = _unb64(payload["ciphertext"])
    if not hmac.compare_digest(HMAC.new(mac_key, ciphertext, SHA256).digest(), _unb64(payload["mac"])):
        raise ValueError(f"secret {name}: bad MAC (wrong key?)")
    iv = _unb64(payload["iv"])
    return AES.new(aes_key, AES.MODE_CTR, initial_value=iv, nonce=b"").decrypt(ciphertext).decode()


def key_description(storage_key: bytes, name: str = "rpbot recovery key") -> dict[str, str]:
    """The content of `m.secret_storage.key.<id>`: its algorithm and the check value clients verify."""
    check = encrypt_secret(storage_key, "", "\x00" * 32)
    return {"algorithm": ALGORITHM, "name": name, "iv": check["iv"], "mac": check["mac"]}


def key_matches(storage_key: bytes, description: dict[str, str]) -> bool:
    check = encrypt_secret(storage_key, "", "\x00" * 32, iv=_unb64(description["iv"]))
    return hmac.compare_digest(check["mac"].rstrip("="), description.get("mac", "").rstrip("="))


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, digit = divmod(number, 58)
        out = _BASE58[digit] + out
    return "1" * (len(data) - len(data.lstrip(b"\x00"))) + out


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _BASE58:
            raise RecoveryKeyError(f"not a recovery key: {char!r} is not a base58 character")
        number = number * 58 + _BASE58.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def _parity(data: bytes) -> int:
    parity = 0
    for byte in data:
        parity ^= byte
    return parity


def encode_recovery_key(storage_key: bytes) -> str:
    """The recovery key Element asks for: base58 of prefix + key + parity, in groups of four."""
    raw = RECOVERY_KEY_PREFIX + storage_key
    encoded = _b58encode(raw + bytes([_parity(raw)]))
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def decode_recovery_key(recovery_key: str) -> bytes:
    raw = _b58decode("".join(recovery_key.split()))
    if len(raw) != 35 or raw[:2] != RECOVERY_KEY_PREFIX:
        raise RecoveryKeyError("not a recovery key: wrong length or prefix")
    if _parity(raw[:-1]) != raw[-1]:
        raise RecoveryKeyError("not a recovery key: the parity check failed (a typo?)")
    return raw[2:34]


@dataclass(frozen=True)
class SecretStorage:
    """A new storage key and what to write to account data so that it opens the given secrets."""

    key_id: str
    storage_key: bytes

    @classmethod
    def new(cls) -> SecretStorage:
        return cls(secrets.token_urlsafe(24), os.urandom(32))

    @property
    def recovery_key(self) -> str:
        return encode_recovery_key(self.storage_key)

    def account_data(self, named_secrets: dict[str, str]) -> dict[str, dict]:
        """Account data type -> content: the key, each secret encrypted with it, and the default-key pointer (last)."""
        data: dict[str, dict] = {f"m.secret_storage.key.{self.key_id}": key_description(self.storage_key)}
        for name, value in named_secrets.items():
            data[name] = {"encrypted": {self.key_id: encrypt_secret(self.storage_key, name, value)}}
        data["m.secret_storage.default_key"] = {"key": self.key_id}
        return data
