"""Structured logs: one JSON object per line, `extra=` fields as top-level keys.

Fields, redaction, and why stdlib and not Powertools: docs/operations.md.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
import traceback
import uuid
from typing import Any, Iterator

# LOG_LEVEL sets only these: DEBUG on botocore would flood the log.
APP_LOGGERS = ("chalicelib", "incidents", "incidents_alarms")
QUIET_LOGGERS = ("botocore", "boto3", "urllib3")
MAX_TEXT = 300
REDACTED = "[redacted]"
_SECRET_WORDS = ("secret", "token", "password", "api_key", "apikey", "x-api-key", "authorization")

# Anything not on every LogRecord came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "aws_request_id", "taskName"}

_invocation: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("invocation", default={})
_summary: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("summary", default=None)


class JsonFormatter(logging.Formatter):
    """A record -> one line of JSON, traceback included."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": iso_timestamp(record.created),
            "level": record.levelname,
            "message": _clip(record.getMessage()),
            "logger": record.name,
            **_invocation.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = clean(key, value)
        if record.exc_info:
            entry["exception_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info))[-4000:]
        line = json.dumps(entry, ensure_ascii=False, default=str)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from some input
            line = json.dumps(entry, ensure_ascii=True, default=str)
        return line


class _StdoutHandler(logging.StreamHandler):
    """Writes to sys.stdout as it is at each write (pytest swaps it per test)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup(level: str | None = None) -> None:
    """Idempotent. Lambda's root handler is kept (it frames each record as one log event), as is
    `chalice local`'s: only their formatter is swapped."""
    root = logging.getLogger()
    found = [h for h in root.handlers
             if type(h).__name__.startswith("Lambda") or type(h) is logging.StreamHandler]
    for handler in found:
        handler.setFormatter(JsonFormatter())
    if not found and not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        root.addHandler(_StdoutHandler())
    chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(chosen)
    for name in QUIET_LOGGERS:  # `chalice local` sets the root to INFO
        logging.getLogger(name).setLevel(logging.WARNING)


def iso_timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def clean(key: str, value: Any) -> Any:
    if any(word in key.lower() for word in _SECRET_WORDS):
        return REDACTED
    if isinstance(value, str):
        return _clip(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _clip(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


@contextlib.contextmanager
def invocation(context: Any, **fields: Any) -> Iterator[dict[str, Any]]:
    """Tags every line logged inside with the function and request ids."""
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    function = getattr(context, "function_name", None) or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    values = {k: v for k, v in {"function": function, "request_id": request_id, **fields}.items()
              if v is not None}
    token = _invocation.set(values)
    try:
        yield values
    finally:
        _invocation.reset(token)


def current_invocation() -> dict[str, Any]:
    return _invocation.get()


@contextlib.contextmanager
def summary() -> Iterator[dict[str, Any]]:
    """Collects `annotate()` fields for the summary line of one request or record."""
    fields: dict[str, Any] = {}
    token = _summary.set(fields)
    try:
        yield fields
    finally:
        _summary.reset(token)


def annotate(**fields: Any) -> None:
    """No-op outside summary()."""
    collected = _summary.get()
    if collected is not None:
        collected.update({k: v for k, v in fields.items() if v is not None})


def annotate_outcome(outcome: str) -> None:
    """The first outcome wins: a `duplicate` said deep down is not overwritten by `handled`."""
    collected = _summary.get()
    if collected is not None:
        collected.setdefault("outcome", outcome)


def summarized(key: str) -> Any:
    collected = _summary.get()
    return collected.get(key) if collected else None
