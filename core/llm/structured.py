"""Structured (JSON) answers from a model: tolerant extraction, validation, safe defaults.

Classifier calls ask for JSON matching a pydantic model. Providers that honour
`response_format` return clean JSON; others wrap it in prose or code fences, or think aloud
first (`<think>...</think>`). `extract_json` digs the first JSON object out of such text, and
`generate_json` validates it against the schema. Bad model output never raises: the caller's
safe default is returned and a warning logged. Every such failure is also counted by purpose in `parse_failures`, which `!status` shows
operators. Transport errors (`LLMError`) still raise unless
`default_on_llm_error=True`, because "the model is unreachable" is not "the model said nonsense".
"""

from __future__ import annotations

import enum
import json
import logging
import re
import types
import typing
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.llm.base import ChatMessage, LLMClient, LLMError, ModelRole

logger = logging.getLogger("core.llm.structured")

SchemaT = TypeVar("SchemaT", bound=BaseModel)

parse_failures: Counter[str] = Counter()
"""Structured answers that could not be used, by purpose, since the process started (`!status`)."""

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CODE_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any | None:
    """The first JSON value found in model output, or None.

    Tries, in order: the whole text; the inside of each ``` fence; every balanced {...} object
    in the text, left to right. Reasoning blocks (<think>...</think>) are ignored.
    """
    text = _THINK_BLOCK.sub("", text).strip()
    if not text:
        return None
    candidates = [text, *(m.group(1).strip() for m in _CODE_FENCE.finditer(text))]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
    for obj_text in _balanced_objects(text):
        try:
            return json.loads(obj_text)
        except (json.JSONDecodeError, ValueError):
            continue
    return None


def _balanced_objects(text: str) -> Iterator[str]:
    """Yield each balanced {...} substring, from every '{' that starts one, left to right."""
    start = text.find("{")
    while start != -1:
        end = _matching_brace(text, start)
        if end is not None:
            yield text[start : end + 1]
        start = text.find("{", start + 1)


def _matching_brace(text: str, start: int) -> int | None:
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def parse_structured(text: str, schema: type[SchemaT]) -> SchemaT | None:
    """Validate model output against `schema`; None when no valid JSON object is in it."""
    value = extract_json(text)
    if value is None:
        return None
    try:
        return schema.model_validate(value)
    except ValidationError:
        return None


async def generate_json(
    llm: LLMClient,
    messages: Sequence[ChatMessage],
    *,
    purpose: str,
    schema: type[SchemaT],
    default: SchemaT,
    role: ModelRole = "classifier",
    max_tokens: int | None = None,
    temperature: float | None = 0.0,
    default_on_llm_error: bool = False,
) -> SchemaT:
    """Ask for JSON matching `schema`; return it validated, or `default` (logged) if it is not."""
    try:
        text = await llm.generate(
            messages,
            purpose=purpose,
            role=role,
            max_tokens=max_tokens,
            temperature=temperature,
            response_schema=schema,
        )
    except LLMError as error:
        if not default_on_llm_error:
            raise
        logger.warning("LLM call %r failed (%s); using the default %r", purpose, error, default)
        return default
    value = extract_json(text)
    if value is None:
        parse_failures[purpose] += 1
        logger.warning(
            "LLM call %r returned no JSON; using the default. Output: %.300r", purpose, text
        )
        return default
    try:
        return schema.model_validate(value)
    except ValidationError as error:
        parse_failures[purpose] += 1
        logger.warning(
            "LLM call %r returned JSON that does not fit %s (%d errors); using the default. "
            "Output: %.300r",
            purpose,
            schema.__name__,
            error.error_count(),
            text,
        )
        return default


def response_format_for(schema: type[BaseModel]) -> dict[str, Any]:
    """The OpenAI `response_format` asking for JSON that fits `schema`."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
    }


def placeholder_instance(schema: type[SchemaT]) -> SchemaT:
    """A valid instance of `schema`: field defaults where they exist, minimal values elsewhere
    (empty strings, zeros, False, empty containers, the first Literal/enum option)."""
    values = {
        name: _placeholder_for(field.annotation)
        for name, field in schema.model_fields.items()
        if field.is_required()
    }
    try:
        return schema.model_validate(values)
    except ValidationError:
        return schema.model_construct(**values)


def _placeholder_for(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return None
    if origin is typing.Literal:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        if type(None) in args:
            return None
        return _placeholder_for(args[0])
    if origin is typing.Annotated:
        return _placeholder_for(args[0])
    if origin in (list, set, frozenset, Sequence) or annotation in (list, set, frozenset):
        return []
    if origin is tuple:
        return [_placeholder_for(arg) for arg in args if arg is not Ellipsis] if args else []
    if origin is dict or annotation is dict:
        return {}
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return placeholder_instance(annotation).model_dump()
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation)).value
        if issubclass(annotation, bool):
            return False
        if issubclass(annotation, (int, float)):
            return annotation(0)
        if issubclass(annotation, str):
            return ""
    return None
