"""Who signed which device, read from a `/keys/query` answer: only a chain from the master key counts."""

from __future__ import annotations

from adapter.matrix.cross_signing import CrossSigningKeys
from adapter.matrix.signatures import Json, cross_signed_devices, sign

USER = "@player:localhost"


def device(device_id: str) -> Json:
    return {"user_id": USER, "device_id": device_id, "algorithms": [], "keys": {f"ed25519:{device_id}": "a" * 43}}


def keys_query(keys: CrossSigningKeys, devices: dict[str, Json]) -> Json:
    body = keys.upload_body(USER)
    return {
        "device_keys": {USER: devices},
        "master_keys": {USER: body["master_key"]},
        "self_signing_keys": {USER: body["self_signing_key"]},
    }


def test_only_devices_signed_by_the_self_signing_key_its_master_signed_count() -> None:
    keys, stranger = CrossSigningKeys.generate(), CrossSigningKeys.generate()
    devices = {
        "SIGNED": sign(device("SIGNED"), USER, keys.self_signing),
        "UNSIGNED": device("UNSIGNED"),
        "BY_MASTER": sign(device("BY_MASTER"), USER, keys.master),  # Element wants the self-signing key
        "BY_STRANGER": sign(device("BY_STRANGER"), USER, stranger.self_signing),
    }
    assert cross_signed_devices(keys_query(keys, devices), USER) == {"SIGNED"}

    tampered = keys_query(keys, {"SIGNED": {**devices["SIGNED"], "algorithms": ["changed"]}})
    assert cross_signed_devices(tampered, USER) == set()


def test_a_self_signing_key_not_signed_by_the_master_key_means_no_cross_signing() -> None:
    keys, stranger = CrossSigningKeys.generate(), CrossSigningKeys.generate()
    query = keys_query(keys, {"SIGNED": sign(device("SIGNED"), USER, keys.self_signing)})
    query["master_keys"][USER] = stranger.upload_body(USER)["master_key"]
    assert cross_signed_devices(query, USER) is None
    assert cross_signed_devices({"device_keys": {USER: {}}}, USER) is None
