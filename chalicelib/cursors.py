"""Opaque list cursors: position and filters, signed with the stage's key (docs/security.md)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from typing import Any

from chalicelib import secrets
from chalicelib.incidents import InvalidInput

MAX_CURSOR = 512  # characters; what the service issues is well under 200

_MOMENT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LIST_POSITION = re.compile(rf"{_MOMENT}#\d{{20}}")
HISTORY_POSITION = re.compile(rf"history#{_MOMENT}(?:#\d{{1,6}})?")

# Only when no key is configured at all: random per process, so nothing shipped signs cursors.
_PROCESS_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

NOT_ISSUED = "cursor was not issued by this service; use next_cursor from a previous page"


def encode(position: str, filters: dict[str, Any]) -> str:
    payload = _b64(json.dumps({"p": position, "f": filters}, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_signature(payload, _keys()[0]))}"


def decode(cursor: str, filters: dict[str, Any], position: re.Pattern[str] | None = None) -> str:
    """InvalidInput unless issued for these filters (and, with `position`, of that shape)."""
    if len(cursor) > MAX_CURSOR:
        raise InvalidInput(NOT_ISSUED)
    payload, _, signature = cursor.partition(".")
    try:
        presented = _unb64(signature)
        valid = any(hmac.compare_digest(presented, _signature(payload, key)) for key in _keys())
        data = json.loads(_unb64(payload)) if valid else None
    except (ValueError, binascii.Error):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("p"), str):
        raise InvalidInput(NOT_ISSUED)
    if position is not None and not position.fullmatch(data["p"]):
        raise InvalidInput(NOT_ISSUED)
    if data.get("f") != filters:
        raise InvalidInput("cursor was issued for other filters; repeat the same status, source and team")
    return data["p"]


def _keys() -> list[bytes]:
    """The signing key first, then keys still accepted (rotation)."""
    configured = [k.strip() for k in secrets.read(secrets.CURSOR_SECRET).split(",") if k.strip()]
    if configured:
        return [k.encode("utf-8") for k in configured]
    if secrets.parameter_name(secrets.CURSOR_SECRET):
        # Named but empty: never sign with anything guessable.
        raise secrets.SecretUnavailable("the cursor-signing key parameter is empty")
    return [_PROCESS_KEY.encode("ascii")]


def _signature(payload: str, key: bytes) -> bytes:
    return hmac.new(key, payload.encode("ascii", "replace"), hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
