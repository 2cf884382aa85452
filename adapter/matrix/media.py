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

MAX_UPLOAD_BYTES = 8 * 1024 * 1024


class MediaError(Exception):
    """The file could not be had; the message says why, for the player."""


async def fetch_uploaded_file(client: AsyncClient, room_id: str, event_id: str) -> tuple[str, bytes]:
    """(file name, bytes) of the file sent as `event_id` in `room_id`."""
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
        raise MediaError("Reply to an uploaded file (a card as .png or .json).")
    size = (event.source.get("content", {}).get("info") or {}).get("size")
    if isinstance(size, int) and size > MAX_UPLOAD_BYTES:
        raise MediaError(f"That file is too large (over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB).")
    download = await client.download(mxc=event.url)
    if isinstance(download, DownloadError):
        raise MediaError("The homeserver would not give me that file.")
    data = download.body
    if len(data) > MAX_UPLOAD_BYTES:
        raise MediaError(f"That file is too large (over {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB).")
    if isinstance(event, RoomEncryptedMedia):
        try:
            data = decrypt_attachment(data, event.key["k"], event.hashes["sha256"], event.iv)
        except (EncryptionError, KeyError, TypeError, ValueError) as exc:  # a bad digest, key or IV, or a key field missing
            raise MediaError("That encrypted file would not decrypt.") from exc
    return event.body, data
