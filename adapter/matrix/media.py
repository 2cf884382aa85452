"""Fetching a file a player uploaded: the event it is in, its bytes, decrypted in E2EE rooms."""

from __future__ import annotations

from nio import (
    AsyncClient,
    DownloadError,
    MegolmEvent,
    RoomEncryptedMedia,
    RoomGetEventError,
    RoomMessageMedia,
)
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import EncryptionError

from adapter.errors import AdapterError

MAX_UPLOAD_BYTES = 8 * 1024 * 1024


class MediaError(AdapterError):
    """The file could not be had; the message says why, for the player."""

    worded_for_player = True


def _too_large(max_bytes: int) -> str:
    return f"That file is too large (over {max_bytes // (1024 * 1024)} MiB)."


async def fetch_uploaded_file(
    client: AsyncClient, room_id: str, event_id: str, *, max_bytes: int = MAX_UPLOAD_BYTES,
    expected: str = "a card as .png or .json",
) -> tuple[str, bytes]:
    """(file name, bytes) of the file sent as `event_id` in `room_id`, at most `max_bytes`
    (`expected` says what the file should be, for the player)."""
    response = await client.room_get_event(room_id, event_id)
    if isinstance(response, RoomGetEventError):
        raise MediaError("I cannot see the message you replied to.")
    event = response.event
    if isinstance(event, MegolmEvent):
        try:
            event = client.decrypt_event(event)
        except Exception as exc:  # noqa: BLE001  (nio raises several kinds here)
            raise MediaError("I cannot decrypt the message you replied to.") from exc
    if not isinstance(event, (RoomMessageMedia, RoomEncryptedMedia)):
        raise MediaError(f"Reply to an uploaded file ({expected}).")
    size = (event.source.get("content", {}).get("info") or {}).get("size")
    if isinstance(size, int) and size > max_bytes:
        raise MediaError(_too_large(max_bytes))
    download = await client.download(mxc=event.url)
    if isinstance(download, DownloadError):
        raise MediaError("The homeserver would not give me that file.")
    data = download.body
    if len(data) > max_bytes:
        raise MediaError(_too_large(max_bytes))
    if isinstance(event, RoomEncryptedMedia):
        try:
            data = decrypt_attachment(data, event.key["k"], event.hashes["sha256"], event.iv)
        except (EncryptionError, KeyError, TypeError, ValueError) as exc:  # a bad digest, key or IV, or a key field missing
            raise MediaError("That encrypted file would not decrypt.") from exc
    return event.body, data
