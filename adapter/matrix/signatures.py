"""Ed25519 signatures on Matrix JSON, and reading cross-signing trust from a `/keys/query` answer.

Signing and checking use signedjson (canonical JSON, the `signatures` block) over PyNaCl.
`cross_signed_devices` answers the question Element asks before it talks to a device:
is it signed by its owner's self-signing key, which is itself signed by the owner's
master key? Both the bot (for whom it shares room keys with) and `rpbot doctor` use it.
"""

from __future__ import annotations

from typing import Any

from nacl.signing import SigningKey as NaclSigningKey
from signedjson.key import decode_signing_key_base64, decode_verify_key_bytes, encode_verify_key_base64, get_verify_key
from signedjson.sign import SignatureVerifyException, sign_json, verify_signed_json
from signedjson.types import SigningKey
from unpaddedbase64 import decode_base64, encode_base64

Json = dict[str, Any]


def signing_key_from_seed(seed_b64: str) -> SigningKey:
    """The Ed25519 key of a seed (unpadded base64); its signedjson version is its public key, as Matrix names keys."""
    public = encode_base64(bytes(NaclSigningKey(decode_base64(seed_b64)).verify_key))
    return decode_signing_key_base64("ed25519", public, seed_b64)


def public_key(key: SigningKey) -> str:
    return encode_verify_key_base64(get_verify_key(key))


def sign(obj: Json, user_id: str, key: SigningKey) -> Json:
    """`obj` with a signature of `user_id` by `key` added (other signatures kept)."""
    return sign_json(dict(obj), user_id, key)


def signed_by(obj: Json, user_id: str, public_b64: str) -> bool:
    """Whether `obj` carries a valid signature of `user_id` by the Ed25519 key `public_b64`."""
    try:
        verify_key = decode_verify_key_bytes(f"ed25519:{public_b64}", decode_base64(public_b64))
        verify_signed_json(obj, user_id, verify_key)
    except (SignatureVerifyException, ValueError, KeyError, TypeError):
        return False
    return True


def cross_signing_key(obj: Json | None, usage: str) -> str | None:
    """The public key of a cross-signing key object of the given usage, or None."""
    if not obj or usage not in obj.get("usage", []):
        return None
    keys = list(obj.get("keys", {}).values())
    return keys[0] if len(keys) == 1 else None


def self_signing_key(query: Json, user_id: str) -> str | None:
    """The user's self-signing public key from a `/keys/query` answer, if their master key signed it."""
    master = cross_signing_key(query.get("master_keys", {}).get(user_id), "master")
    ssk_obj = query.get("self_signing_keys", {}).get(user_id)
    ssk = cross_signing_key(ssk_obj, "self_signing")
    if master is None or ssk is None or not signed_by(ssk_obj, user_id, master):
        return None
    return ssk


def cross_signed_devices(query: Json, user_id: str) -> set[str] | None:
    """Ids of the user's devices signed by their self-signing key; None if the user has no valid cross-signing."""
    ssk = self_signing_key(query, user_id)
    if ssk is None:
        return None
    devices = query.get("device_keys", {}).get(user_id, {})
    return {device_id for device_id, keys in devices.items() if signed_by(keys, user_id, ssk)}
