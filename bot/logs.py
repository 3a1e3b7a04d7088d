"""Structured logs: one JSON object per line, with bound context and secrets masked.

``configure_logging()`` installs one handler on the root logger. Each record becomes::

    {"ts": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "bot.service",
     "event": "trigger_enqueued", "delivery_id": "…", "repo": "octo/demo", "issue": 5}

Context comes from ``bind(...)``, which sets a ``contextvars`` variable for the duration of a
``with`` block. asyncio copies the context into each task it creates, so fields bound in one
task never show up in another. Fields passed with ``extra=`` are added too, and an exception
is written as ``exc`` text.

Secrets are never written: the ``RedactFilter`` on the handler masks GitHub tokens
(``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``, ``github_pat_``, ``v1.``), JWT-like ``eyJ…``
strings, PEM blocks, credentials in URLs and ``Authorization`` values, provider API keys
(the patterns are in ``bot/core/redact.py``, shared with the runner's transcripts), in the
message, the extras and the exception text; and values of extras with secret-sounding names
(``token``, ``*_token``, ``password``, ``*_secret``, ``private_key``, ``authorization``) are
masked whole.
The formatted line is masked once more as a last guard.

Uvicorn installs its own handlers unless started with ``log_config=None``; pass that so its
records reach this handler.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any

from bot.core.redact import REDACTED, redact

__all__ = ["REDACTED", "bind", "configure_logging", "current_context", "redact"]

#: Context fields the bot binds; ``bind`` accepts any others too.
CONTEXT_FIELDS = ("delivery_id", "repo", "issue", "pr", "worker")

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "stoneforge_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_RESERVED = ("ts", "level", "logger", "event", "exc", "stack")

# Extra/context keys whose values are masked whole: "token", "runner_token", "webhook_secret",
# ... but not "input_tokens".
_SECRET_KEY_RE = re.compile(
    r"(?i)(?:^|_)(?:token|password|passwd|secret|private_key|authorization|api_key|jwt)$"
)


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY_RE.search(key) and value is not None and value != "":
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


# --- context ------------------------------------------------------------------------------------


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every record logged inside the block (``None`` unbinds a field)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    """The fields bound here, without the ones bound to ``None``."""
    return {k: v for k, v in _context.get().items() if v is not None}


# --- filter and formatters ----------------------------------------------------------------------


class RedactFilter(logging.Filter):
    """Masks secrets in the record's message, extras and exception text (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_stoneforge_redacted", False):
            try:
                message = record.getMessage()
            except Exception:  # bad %-args: keep what we can, masked
                message = f"{record.msg!r} % {record.args!r}"
            record.msg, record.args = redact(message), None
            for key in _extra_keys(record):
                setattr(record, key, _redact_value(key, getattr(record, key)))
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
            record._stoneforge_redacted = True
        return True


def _extra_keys(record: logging.LogRecord) -> list[str]:
    return [k for k in record.__dict__ if k not in _RECORD_ATTRS and not k.startswith("_")]


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Bound context, then extras (an extra wins over context; reserved names get ``extra_``)."""
    fields: dict[str, Any] = {}
    for key, value in (*current_context().items(), *_extras(record)):
        fields[f"extra_{key}" if key in _RESERVED else key] = _redact_value(key, value)
    return fields


def _extras(record: logging.LogRecord) -> list[tuple[str, Any]]:
    return [(k, getattr(record, k)) for k in _extra_keys(record)]


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return redact(record.exc_text) if record.exc_text else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, context, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        entry.update(_fields(record))
        exc = _exception_text(self, record)
        if exc:
            entry["exc"] = exc
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``ts level logger event key=value …`` for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            f"{record.levelname:<7}",
            record.name,
            redact(record.getMessage()),
        ]
        parts.extend(f"{k}={json.dumps(v, default=str)}" for k, v in _fields(record).items())
        line = " ".join(parts)
        exc = _exception_text(self, record)
        if exc:
            line += "\n" + exc
        return redact(line)


def configure_logging(
    level: str = "info", *, json_format: bool = True, stream: IO[str] | None = None
) -> logging.Handler:
    """Send all logging to ``stream`` (default ``sys.stderr``) as JSON lines or text.

    Replaces the handler a previous call installed (and leaves other handlers alone), so it
    is safe to call more than once. Returns the installed handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_stoneforge", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    handler.addFilter(RedactFilter())
    handler._stoneforge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
