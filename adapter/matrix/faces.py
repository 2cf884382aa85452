"""Faces: the pictures a player sees for each character, the Space, the Lobby and each story room.

Built-in characters have portraits drawn here (a head-and-shoulders figure in each one's own
colours, with the thing they are known by: Wren's compass, Odile's goggles, Tamsin's tea bowl,
Ilse's playing card); any other character gets a monogram in colours derived from its name.
A character imported from a PNG card wears the card's own picture.
Everything else is drawn with pillow, deterministically, so the same character always has the same
face and an image is uploaded to the media repository only once (see `adapter.matrix.media`).
"""

from __future__ import annotations

import colorsys
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from adapter.matrix.room_types import RoomType

SIZE = 256
Color = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    sky_top: Color
    sky_bottom: Color
    figure: Color
    hair: Color
    accent: Color


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _gradient(top: Color, bottom: Color) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), top)
    draw = ImageDraw.Draw(image)
    for y in range(SIZE):
        t = y / (SIZE - 1)
        draw.line([(0, y), (SIZE, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return image


def _figure(draw: ImageDraw.ImageDraw, palette: Palette, *, hair: str) -> None:
    """Shoulders, neck and head, with a hair shape: "long", "braid", "short" or "shaved"."""
    if hair == "long":
        draw.ellipse((78, 58, 178, 196), fill=palette.hair)
    if hair == "braid":
        draw.ellipse((150, 120, 186, 230), fill=palette.hair)
    draw.ellipse((40, 178, 216, 330), fill=palette.figure)  # shoulders
    draw.rectangle((112, 140, 144, 190), fill=palette.figure)  # neck
    draw.ellipse((88, 66, 168, 162), fill=palette.figure)  # head
    if hair in ("long", "braid"):
        draw.chord((84, 58, 172, 140), 180, 360, fill=palette.hair)
    if hair == "short":
        draw.chord((86, 60, 170, 130), 170, 370, fill=palette.hair)


def _wren(draw: ImageDraw.ImageDraw, palette: Palette) -> None:
    _figure(draw, palette, hair="long")
    draw.ellipse((26, 186, 86, 246), outline=palette.accent, width=6)  # the brass compass
    draw.polygon([(56, 194), (62, 216), (56, 238), (50, 216)], fill=palette.accent)


def _odile(draw: ImageDraw.ImageDraw, palette: Palette) -> None:
    _figure(draw, palette, hair="short")
    for x in (100, 132):  # goggles pushed up into her hair
        draw.ellipse((x, 62, x + 26, 88), fill=palette.sky_top, outline=palette.accent, width=5)
    draw.ellipse((150, 30, 232, 62), fill=palette.accent)  # the Lark, far off
    draw.rectangle((178, 62, 204, 72), fill=palette.accent)


def _tamsin(draw: ImageDraw.ImageDraw, palette: Palette) -> None:
    draw.ellipse((186, 28, 230, 72), fill=palette.accent)  # a midnight moon
    draw.ellipse((172, 22, 216, 66), fill=palette.sky_top)
    _figure(draw, palette, hair="shaved")
    draw.chord((30, 212, 96, 262), 0, 180, fill=palette.accent)  # the tea bowl
    draw.line([(52, 206), (58, 190), (52, 176)], fill=palette.accent, width=3)


def _ilse(draw: ImageDraw.ImageDraw, palette: Palette) -> None:
    for x, y in ((30, 40), (200, 70), (60, 110), (220, 20), (120, 28)):  # snow
        draw.ellipse((x, y, x + 7, y + 7), fill=(245, 245, 250))
    _figure(draw, palette, hair="braid")
    draw.rounded_rectangle((28, 196, 78, 262), radius=6, fill=(250, 248, 240), outline=palette.accent, width=3)  # a card
    draw.polygon([(53, 214), (64, 229), (53, 244), (42, 229)], fill=palette.accent)


_BUILTIN: dict[str, tuple[Palette, Callable[[ImageDraw.ImageDraw, Palette], None]]] = {
    "wren-halloway": (Palette((96, 122, 140), (196, 206, 204), (52, 58, 72), (122, 62, 40), (201, 160, 72)), _wren),
    "odile-marchetti": (Palette((214, 120, 72), (250, 206, 140), (62, 44, 40), (36, 30, 28), (92, 74, 58)), _odile),
    "tamsin-vale": (Palette((24, 28, 64), (70, 60, 110), (30, 26, 36), (30, 26, 36), (232, 214, 160)), _tamsin),
    "ilse-varga": (Palette((120, 140, 178), (220, 228, 240), (70, 40, 70), (200, 204, 214), (168, 36, 48)), _ilse),
}


def builtin_portrait(character_id: str) -> bytes | None:
    """The drawn portrait of a built-in character, as PNG; None for any other character."""
    found = _BUILTIN.get(character_id)
    if found is None:
        return None
    palette, draw_details = found
    image = _gradient(palette.sky_top, palette.sky_bottom)
    draw_details(ImageDraw.Draw(image), palette)
    return _png(image)


def initials(name: str) -> str:
    words = [word for word in name.replace("-", " ").split() if word[:1].isalnum()]
    if not words:
        return "?"
    if len(words) == 1:
        return words[0][:1].upper()
    return (words[0][:1] + words[-1][:1]).upper()


def _hue_color(seed: str, saturation: float, lightness: float) -> Color:
    hue = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:2], "big") / 65535
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return round(red * 255), round(green * 255), round(blue * 255)


def monogram(name: str, *, seed: str | None = None) -> bytes:
    """Initials on a two-tone background whose colours follow from `seed` (the name by default)."""
    seed = seed or name
    image = _gradient(_hue_color(seed, 0.45, 0.38), _hue_color(seed + "/", 0.40, 0.55))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=110)
    text = initials(name)
    draw.text((SIZE / 2, SIZE / 2), text, font=font, fill=(250, 250, 250), anchor="mm")
    return _png(image)


def card_portrait(data: bytes) -> bytes | None:
    """A PNG card's own picture, squared and scaled to a face, with the card's text chunks left out; None if it is no image."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            picture = opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    side = min(picture.size)
    left, top = (picture.width - side) // 2, 0  # cards are portraits: keep the top, where the face is
    return _png(picture.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.Resampling.LANCZOS))


def character_face(character_id: str, name: str, imported: Path | None = None) -> bytes:
    """What a character looks like: its card's picture (kept in `imported`), its portrait, or its monogram."""
    if imported is not None and imported.exists():
        return imported.read_bytes()
    return builtin_portrait(character_id) or monogram(name, seed=character_id)


def place_face(kind: RoomType) -> bytes:
    """The Space's and the Lobby's pictures: a book of stories and an open door."""
    image = _gradient((44, 52, 84), (120, 96, 140)) if kind == RoomType.SPACE else _gradient((60, 96, 90), (170, 196, 170))
    draw = ImageDraw.Draw(image)
    if kind == RoomType.SPACE:
        draw.polygon([(48, 70), (128, 90), (128, 206), (48, 186)], fill=(240, 232, 214))
        draw.polygon([(208, 70), (128, 90), (128, 206), (208, 186)], fill=(226, 216, 196))
        for y in (112, 132, 152):
            draw.line([(64, y - 12), (116, y)], fill=(150, 140, 130), width=3)
            draw.line([(140, y), (192, y - 12)], fill=(150, 140, 130), width=3)
    else:
        draw.rectangle((78, 50, 178, 222), fill=(70, 48, 40))
        draw.polygon([(88, 60), (150, 76), (150, 222), (88, 212)], fill=(244, 210, 140))
        draw.ellipse((132, 140, 142, 150), fill=(70, 48, 40))
    return _png(image)
