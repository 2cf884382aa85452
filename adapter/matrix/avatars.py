"""Faces on Matrix: room avatars and the per-message profile each character speaks with.

Every character's reply carries its name and picture as a per-message profile (MSC4144, unstable
key `com.beeper.per_message_profile`), so clients that render it show the character, not the bot
account. Images are uploaded to the media repository once: the content URI is remembered in the
adapter's store under the image's digest, so a restart reuses it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from adapter.matrix.context import BotContext
from adapter.matrix.faces import card_portrait, character_face, place_face
from adapter.matrix.outgoing import SendFailed
from adapter.matrix.render import SpeakerProfile
from adapter.matrix.room_types import RoomType
from adapter.matrix.store import get_uploaded_media, set_uploaded_media

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def uploaded(ctx: BotContext, png: bytes, filename: str, content_type: str = "image/png") -> str | None:
    """The mxc URI of this image, uploading it the first time; None if the homeserver refused it."""
    digest = hashlib.sha256(png).hexdigest()
    known = await get_uploaded_media(ctx.store, digest)
    if known is not None:
        return known
    try:
        uri = await ctx.sender.upload(png, content_type, filename)
    except SendFailed as exc:  # a face is a nicety: the story goes on without it
        log.warning("could not upload %s: %s", filename, exc)
        return None
    await set_uploaded_media(ctx.store, digest, uri)
    return uri


def imported_face_path(ctx: BotContext, character_id: str) -> Path:
    """Where the picture of a character imported from a PNG card is kept: with the stories, not in the cache."""
    return Path(ctx.config.storage.data_dir) / "faces" / f"{hashlib.sha256(character_id.encode()).hexdigest()[:32]}.png"


def keep_card_face(ctx: BotContext, character_id: str, card: bytes) -> None:
    """Keep a PNG card's picture as the character's face (a JSON card has none: the character gets a monogram)."""
    face = card_portrait(card) if card.startswith(PNG_SIGNATURE) else None
    if face is None:
        return
    path = imported_face_path(ctx, character_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(face)


async def speaker_profile(ctx: BotContext, character_id: str, name: str) -> SpeakerProfile:
    """Who a message is from, as the per-message profile shows it."""
    face = character_face(character_id, name, imported_face_path(ctx, character_id))
    avatar = await uploaded(ctx, face, f"{character_id}.png")
    return SpeakerProfile(profile_id=character_id, displayname=name, avatar_url=avatar)


async def place_avatar(ctx: BotContext, kind: RoomType) -> str | None:
    """The Space's or the Lobby's picture, uploaded."""
    return await uploaded(ctx, place_face(kind), f"{kind}.png")


def avatar_state(uri: str | None) -> list[dict]:
    """The `m.room.avatar` initial state for a new room (nothing when there is no picture)."""
    return [{"type": "m.room.avatar", "state_key": "", "content": {"url": uri}}] if uri else []
