"""The bot account's own face: its display name and avatar, set at start only when they differ.

Players see the account's own profile in the invite, the Space and the Lobby: a name and a picture
(`[matrix] display_name` and `avatar`; by default the account keeps its name and, if it has no
picture, gets the portrait that ships in `assets/`). Images are uploaded once (the content URI is
kept by the image's digest, like the characters' faces; after a lost cache the account's current
picture is recognised by its bytes instead of uploaded again).

Changing the profile makes the homeserver rewrite the bot's `m.room.member` in every room it is in
(Synapse's profile handler, `_update_join_states`, one request counted against `rc_message`), which
resets the characters' faces in story rooms. So it is changed only when it differs from the
configured one, before the start's full-state sync, and the start waits until the rewrite has
reached every room: each story room's next character line then switches its face back, since the
switch reads the room's real state (`adapter.matrix.speaking`).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from nio import DownloadError, JoinedRoomsResponse, ProfileGetResponse, RoomGetStateEventResponse
from PIL import Image

from adapter.errors import StartupError
from adapter.matrix.avatars import uploaded
from adapter.matrix.context import BotContext
from adapter.matrix.outgoing import SetOwnProfile
from adapter.matrix.store import get_uploaded_media, set_uploaded_media

log = logging.getLogger(__name__)

DEFAULT_PORTRAIT = Path(__file__).parent / "assets" / "rpbot.png"
REWRITE_WAIT_S = 60.0


@dataclass(frozen=True)
class OwnProfile:
    displayname: str | None
    avatar_url: str | None


async def current_profile(ctx: BotContext) -> OwnProfile:
    response = await ctx.client.get_profile(ctx.bot_user_id)
    if not isinstance(response, ProfileGetResponse):  # a new account may have no profile row yet
        return OwnProfile(None, None)
    return OwnProfile(response.displayname, response.avatar_url)


def read_image(source: Path) -> tuple[bytes, str]:
    """(the image's bytes, its content type); StartupError if it is no image."""
    data = source.expanduser().read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "")
    except (OSError, ValueError, Image.DecompressionBombError):
        mime = None
    if mime is None:
        raise StartupError(f"matrix.avatar: {source} is not an image rpbot can use (give a PNG or JPEG file)")
    return data, mime


async def _is_same_picture(ctx: BotContext, mxc: str, data: bytes) -> bool:
    response = await ctx.client.download(mxc=mxc)
    return not isinstance(response, DownloadError) and response.body == data


async def _picture_uri(ctx: BotContext, source: Path, current: str | None) -> str | None:
    """The content URI of the image in `source`: the one it was uploaded as, the account's current
    picture if that is the same image, else a new upload."""
    data, content_type = read_image(source)
    digest = hashlib.sha256(data).hexdigest()
    if await get_uploaded_media(ctx.store, digest) is None and current and await _is_same_picture(ctx, current, data):
        await set_uploaded_media(ctx.store, digest, current)
    return await uploaded(ctx, data, source.name, content_type)


async def wanted_profile(ctx: BotContext, current: OwnProfile) -> OwnProfile:
    """The profile the configuration asks for, given the account's `current` one."""
    matrix = ctx.config.matrix
    name = matrix.display_name or current.displayname
    avatar: str | None
    if matrix.avatar.startswith("mxc://"):
        avatar = matrix.avatar
    elif matrix.avatar:
        avatar = await _picture_uri(ctx, Path(matrix.avatar), current.avatar_url)
    elif current.avatar_url:
        avatar = current.avatar_url
    else:
        avatar = await _picture_uri(ctx, DEFAULT_PORTRAIT, None)
    return OwnProfile(name, avatar)


async def ensure_own_profile(ctx: BotContext, wait_s: float = REWRITE_WAIT_S) -> bool:
    """Give the account the configured name and picture if it has others; True if anything changed
    (then wait until every room shows it, at most `wait_s`)."""
    current = await current_profile(ctx)
    wanted = await wanted_profile(ctx, current)
    change = SetOwnProfile(
        wanted.displayname if wanted.displayname and wanted.displayname != current.displayname else None,
        wanted.avatar_url if wanted.avatar_url and wanted.avatar_url != current.avatar_url else None,
    )
    if change.displayname is None and change.avatar_url is None:
        return False
    log.info("setting the account's own profile: %s", change)
    await ctx.sender.send(change)
    await wait_until_rooms_show(ctx, wanted, wait_s)
    return True


async def wait_until_rooms_show(ctx: BotContext, profile: OwnProfile, wait_s: float) -> None:
    """Wait until the bot's member event in every room it is in shows `profile` (the homeserver
    rewrites them one room after another, after answering the profile change)."""
    joined = await ctx.client.joined_rooms()
    pending = set(joined.rooms) if isinstance(joined, JoinedRoomsResponse) else set()
    deadline = asyncio.get_running_loop().time() + wait_s
    while pending:
        for room_id in sorted(pending):
            state = await ctx.client.room_get_state_event(room_id, "m.room.member", ctx.bot_user_id)
            content = state.content if isinstance(state, RoomGetStateEventResponse) else {}
            if content.get("displayname") == profile.displayname and content.get("avatar_url") == profile.avatar_url:
                pending.discard(room_id)
        if pending and asyncio.get_running_loop().time() > deadline:
            log.warning("the homeserver had not shown the new profile in %d rooms after %.0f s; going on", len(pending), wait_s)
            return
        if pending:
            await asyncio.sleep(0.5)
