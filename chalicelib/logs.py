"""Structured logs: one JSON object per line, in Lambda and under `make run` alike.

Every line carries `timestamp`, `level`, `message`, `logger`, and the invocation it belongs to:
`function`, `request_id` (the Lambda request id; a generated one locally) and, for HTTP,
`api_request_id` (API Gateway's). Fields passed as `extra={...}` become top-level keys.
`summary()` collects the fields that matter for one HTTP request or one event record
(`annotate(incident_id=…)` from anywhere below) into the one summary line written at its end.

Stdlib only (no Powertools): the measurement is in docs/operations.md.
Values are never secrets: keys that name one are redacted, and long strings are cut, so a
request body or a Telegram message cannot reach the log whole even by mistake.
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

# Loggers whose level the stage's LOG_LEVEL sets (DEBUG on botocore would flood the log).
APP_LOGGERS = ("chalicelib", "incidents", "incidents_alarms")
QUIET_LOGGERS = ("botocore", "boto3", "urllib3")
MAX_TEXT = 300  # characters of one string value; a body or a message never fits whole
REDACTED = "[redacted]"
_SECRET_WORDS = ("secret", "token", "password", "api_key", "apikey", "x-api-key", "authorization")

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "aws_request_id", "taskName"}

_invocation: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("invocation", default={})
_summary: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("summary", default=None)


class JsonFormatter(logging.Formatter):
    """A record -> one line of JSON (no newline inside: tracebacks are escaped)."""

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
        except UnicodeEncodeError:  # a lone surrogate from some input: escaped, still one JSON line
            line = json.dumps(entry, ensure_ascii=True, default=str)
        return line


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (Lambda and `chalice local` read stdout;
    pytest swaps it per test)."""

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
    """JSON on every line the process logs. Idempotent.

    In Lambda the runtime has put its own handler on the root logger: it is kept (it frames
    each record as one log event) and only its formatter is swapped; so is the handler that
    `chalice local` puts there. Elsewhere one stdout handler is added to the root logger."""
    root = logging.getLogger()
    # Lambda's runtime handler, or the plain stream handler `chalice local` puts on the root.
    found = [h for h in root.handlers
             if type(h).__name__.startswith("Lambda") or type(h) is logging.StreamHandler]
    for handler in found:
        handler.setFormatter(JsonFormatter())
    if not found and not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        root.addHandler(_StdoutHandler())
    chosen = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(chosen)
    for name in QUIET_LOGGERS:  # `chalice local` sets the root to INFO: keep the SDK's chatter out
        logging.getLogger(name).setLevel(logging.WARNING)


def iso_timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def clean(key: str, value: Any) -> Any:
    """A field's value as logged: redacted when its name says secret, strings cut to MAX_TEXT."""
    if any(word in key.lower() for word in _SECRET_WORDS):
        return REDACTED
    if isinstance(value, str):
        return _clip(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _clip(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


# --- the invocation and its summary line ---


@contextlib.contextmanager
def invocation(context: Any, **fields: Any) -> Iterator[dict[str, Any]]:
    """Tags every line logged inside with the function and request ids; yields them."""
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
    """Collects what `annotate()` is told while the block runs (one request, one record)."""
    fields: dict[str, Any] = {}
    token = _summary.set(fields)
    try:
        yield fields
    finally:
        _summary.reset(token)


def annotate(**fields: Any) -> None:
    """Adds fields to the summary line being collected (none being collected: nothing)."""
    collected = _summary.get()
    if collected is not None:
        collected.update({k: v for k, v in fields.items() if v is not None})


def annotate_outcome(outcome: str) -> None:
    """The first outcome told wins: `duplicate` said deep down is not overwritten by `handled`."""
    collected = _summary.get()
    if collected is not None:
        collected.setdefault("outcome", outcome)


def summarized(key: str) -> Any:
    collected = _summary.get()
    return collected.get(key) if collected else None
