"""Secret storage and recovery keys interoperate with what Element's crypto (matrix-rust-sdk) writes and reads.

The vectors are published test data of matrix-rust-sdk's secret storage: a recovery key and
the key description it opens, and a recovery key with the bytes it stands for.
"""

from __future__ import annotations

import os

import pytest

from adapter.matrix.secret_storage import (
    RecoveryKeyError,
    SecretStorage,
    decode_recovery_key,
    decrypt_secret,
    encode_recovery_key,
    key_matches,
)

ELEMENT_RECOVERY_KEY = "EsTj 3yST y93F SLpB jJsz eAXc 2XzA ygD3 w69H fGaN TKBj jXEd"
ELEMENT_KEY_DESCRIPTION = {
    "algorithm": "m.secret_storage.v1.aes-hmac-sha2",
    "iv": "xv5b6/p3ExEw++wTyfSHEg==",
    "mac": "ujBBbXahnTAMkmPUX2/0+VTfUh63pGyVRuBcDMgmJC8=",
}
DECODED = bytes(
    [159, 189, 70, 187, 52, 81, 113, 198, 246, 2, 44, 154, 37, 213, 104, 27]
    + [165, 78, 236, 106, 108, 73, 83, 243, 173, 192, 185, 110, 157, 145, 173, 163]
)


def test_a_recovery_key_made_by_element_opens_its_key_description() -> None:
    assert key_matches(decode_recovery_key(ELEMENT_RECOVERY_KEY), ELEMENT_KEY_DESCRIPTION)
    assert not key_matches(os.urandom(32), ELEMENT_KEY_DESCRIPTION)


def test_recovery_keys_decode_and_encode_as_element_does() -> None:
    assert decode_recovery_key("EsT  pRvZTnjck8  YrhRAtw XLS84Nr2r9S9LGAWDaExVAPBvLRK ") == DECODED
    assert encode_recovery_key(DECODED).replace(" ", "") == "EsTpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRK"


@pytest.mark.parametrize(
    ("typed", "complaint"),
    [
        ("EsTpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk", "parity"),
        ("AATpRvZTnjck8YrhRAtwXLS84Nr2r9S9LGAWDaExVAPBvLRk", "prefix"),
        ("AATpRvZTnjck8YrhRAtwXLS84Nr0OIl", "base58"),
    ],
)
def test_a_mistyped_recovery_key_is_refused_with_the_reason(typed: str, complaint: str) -> None:
    with pytest.raises(RecoveryKeyError, match=complaint):
        decode_recovery_key(typed)


def test_secrets_written_to_account_data_open_with_the_printed_recovery_key() -> None:
    storage = SecretStorage.new()
    data = storage.account_data({"m.cross_signing.master": "c2VlZA"})
    assert data["m.secret_storage.default_key"] == {"key": storage.key_id}
    description = data[f"m.secret_storage.key.{storage.key_id}"]
    key = decode_recovery_key(storage.recovery_key)
    assert key_matches(key, description)
    assert decrypt_secret(key, "m.cross_signing.master", data["m.cross_signing.master"]["encrypted"][storage.key_id]) == "c2VlZA"
    with pytest.raises(ValueError, match="MAC"):
        decrypt_secret(key, "m.cross_signing.self_signing", data["m.cross_signing.master"]["encrypted"][storage.key_id])
