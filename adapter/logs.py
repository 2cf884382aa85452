"""Logging for rpbot: one line per event, as text or as JSON, with room and chat ids.

`setup_logging(level, log_format)` is called once by the `rpbot` command.
Log calls name the room and chat they concern through `extra`:

    log.info("turn started", extra={"room_id": room_id, "chat_id": chat_id})

In text format these appear as `room=... chat=...` after the message; in JSON
format (`--log-format json`) every line is one object with `time`, `level`,
`logger`, `message` and whichever of `room_id`, `chat_id`, `user_id`,
`event_id` the call gave. Message bodies (what players wrote, what characters
said) are logged only at DEBUG, never at INFO or above.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

LOG_FORMATS = ("text", "json")
CONTEXT_FIELDS = ("room_id", "chat_id", "user_id", "event_id")
_SHORT_NAMES = {"room_id": "room", "chat_id": "chat", "user_id": "user", "event_id": "event"}
NOISY_LOGGERS = ("nio", "peewee", "httpx", "httpcore", "aiohttp", "aiosqlite", "asyncio")


def _context_of(record: logging.LogRecord) -> dict[str, str]:
    return {name: str(value) for name in CONTEXT_FIELDS if (value := getattr(record, name, None)) is not None}


class TextFormatter(logging.Formatter):
    """`2026-01-01 12:00:00,000 INFO adapter.matrix.bot: ready ... room=!a:hs chat=c1` on one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{_SHORT_NAMES[k]}={v}" for k, v in _context_of(record).items())
        if context:
            head, sep, rest = line.partition("\n")  # keep tracebacks after the context
            line = f"{head} {context}{sep}{rest}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback goes into `exc_info` as one string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context_of(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger (replacing earlier handlers); libraries stay at WARNING or above."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING or ERROR)")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
