"""Character Card import: V2 and V3 (and legacy V1) from JSON, or from a PNG's text chunk.

A card PNG carries base64-encoded card JSON in a tEXt chunk: `ccv3` for V3,
`chara` for V2 (V3 is preferred when both exist).  The whole card JSON is kept
as `raw_card`, so fields rpbot does not use (extensions, character_book,
assets, anything unknown) survive a round trip.  Anything unreadable raises
`CardImportError`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from core.errors import CardImportError
from core.eventlog import Readable, Writable, writing
from core.eventlog.events import CharacterRegistered
from core.state.world import Character, get_character, register_character

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_CHUNK_KEYS = ("ccv3", "chara")  # in order of preference
MAX_CARD_BYTES = 32 * 1024 * 1024
MAX_CARD_DEPTH = 64  # real cards nest a handful of levels; the event log's serializer stops near 500
SPEC_V2 = "chara_card_v2"
SPEC_V3 = "chara_card_v3"


class CardData(BaseModel):
    """The fields rpbot uses from a card's `data` section; unknown ones are allowed (and kept raw)."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str = ""
    personality: str = ""
    scenario: str = ""
    first_mes: str = ""
    mes_example: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    creator_notes: str = ""
    alternate_greetings: list[str] = []
    tags: list[str] = []
    creator: str = ""
    character_version: str = ""

    @field_validator("*", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        if value is None and info.field_name != "name":
            field = cls.model_fields[info.field_name]
            return field.get_default(call_default_factory=True)
        return value

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the card has an empty name")
        if any(unicodedata.category(c) == "Cc" for c in value):
            raise ValueError("the card's name holds control characters (such as NUL)")
        return value.strip()


def _json_card(text: str) -> dict[str, Any]:
    try:
        card = json.loads(text)
    except json.JSONDecodeError as error:
        raise CardImportError(f"the card is not valid JSON: {error}") from error
    except RecursionError as error:
        raise CardImportError("the card JSON is nested too deeply") from error
    if not isinstance(card, dict):
        raise CardImportError("the card JSON is not an object")
    return card


def _png_card(data: bytes) -> dict[str, Any]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise CardImportError(f"the card image is {image.format}, not a PNG")
            chunks = {str(key).lower(): value for key, value in getattr(image, "text", {}).items()}
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as error:
        raise CardImportError(f"the card is neither JSON nor a readable PNG: {error}") from error
    for key in CARD_CHUNK_KEYS:
        if key in chunks:
            try:
                text = base64.b64decode(chunks[key], validate=False).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError) as error:
                raise CardImportError(f"the PNG's {key!r} chunk is not base64 UTF-8: {error}") from error
            return _json_card(text)
    raise CardImportError("the PNG has no character card (no 'chara' or 'ccv3' text chunk)")


def read_card(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The card JSON object from PNG bytes, JSON bytes / text, or an already-parsed mapping."""
    if isinstance(data, Mapping):
        return dict(data)
    if isinstance(data, str):
        return _json_card(data)
    if len(data) > MAX_CARD_BYTES:
        raise CardImportError(f"the card is larger than {MAX_CARD_BYTES} bytes")
    if data.startswith(PNG_SIGNATURE):
        return _png_card(data)
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        try:
            return _json_card(stripped.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise CardImportError(f"the card JSON is not UTF-8: {error}") from error
    return _png_card(data)  # some other image, or garbage: say which


def character_from_card(card: Mapping[str, Any], character_id: str) -> CharacterRegistered:
    """Map a card (V1, V2 or V3) to the `character_registered` payload, raw card kept."""
    _check_storable(card)
    spec = card.get("spec")
    if spec in (SPEC_V2, SPEC_V3):
        section = card.get("data")
        if not isinstance(section, Mapping):
            raise CardImportError(f"a {spec} card needs a 'data' object")
    elif spec is None and "name" in card:
        spec, section = "chara_card_v1", card
    else:
        raise CardImportError(f"unsupported card spec {spec!r}")
    try:
        fields = CardData.model_validate(dict(section))
        return CharacterRegistered(
            character_id=character_id, spec=str(spec), raw_card=dict(card),
            **fields.model_dump(include=set(CardData.model_fields)),
        )
    except ValidationError as error:
        raise CardImportError(f"the card's fields are invalid: {error}") from error


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (walked without recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_CARD_DEPTH:
            pending.extend((child, depth + 1) for child in children)
    return deepest


def _check_storable(card: Mapping[str, Any]) -> None:
    """CardImportError unless the card can be written as it is (UTF-8 JSON of a sane depth)."""
    if _depth(card) > MAX_CARD_DEPTH:
        raise CardImportError(f"the card JSON is nested more than {MAX_CARD_DEPTH} levels deep")
    try:
        json.dumps(card, ensure_ascii=False).encode("utf-8")
    except RecursionError as error:
        raise CardImportError("the card JSON is nested too deeply") from error
    except UnicodeEncodeError as error:
        raise CardImportError(f"the card holds a broken character (a lone surrogate) at position {error.start}") from error
    except (TypeError, ValueError) as error:
        raise CardImportError(f"the card cannot be stored as JSON: {error}") from error


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48].strip("-")
    return slug or "character"


async def _free_character_id(source: Readable, name: str) -> str:
    base = slugify(name)
    candidate, n = base, 1
    while await get_character(source, candidate) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


async def import_card(
    target: Writable, data: bytes | str | Mapping[str, Any], *, character_id: str | None = None,
    owner: str | None = None,
) -> Character:
    """Import a card and register its character, owned by `owner` (None: everyone's).

    Without `character_id` the id is a slug of the name, made unique: an import never replaces
    a character, so one player's import can never take another's card (or a built-in) over;
    with one, that character is replaced.
    """
    character = character_from_card(read_card(data), character_id or "unassigned")
    character = character.model_copy(update={"owner": owner})
    async with writing(target) as tx:
        if character_id is None:
            character = character.model_copy(update={"character_id": await _free_character_id(tx, character.name)})
        return await register_character(tx, character)
