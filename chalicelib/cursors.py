"""Opaque, tamper-evident list cursors: the position plus the filters it was issued for, signed."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from typing import Any

from chalicelib.incidents import InvalidInput

# Forging a cursor would only move a listing the caller may read anyway, so a
# built-in secret is acceptable; CURSOR_SECRET lets a deployment set its own.
_DEFAULT_SECRET = "incident-list-cursor-v1"


def encode(position: str, filters: dict[str, Any]) -> str:
    payload = _b64(json.dumps({"p": position, "f": filters}, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_signature(payload))}"


def decode(cursor: str, filters: dict[str, Any]) -> str:
    """The position inside `cursor`; InvalidInput unless the service issued it for these filters."""
    payload, _, signature = cursor.partition(".")
    try:
        valid = hmac.compare_digest(_unb64(signature), _signature(payload))
        data = json.loads(_unb64(payload)) if valid else None
    except (ValueError, binascii.Error):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("p"), str):
        raise InvalidInput("cursor was not issued by this service; use next_cursor from a previous page")
    if data.get("f") != filters:
        raise InvalidInput("cursor was issued for other filters; repeat the same status and source")
    return data["p"]


def _signature(payload: str) -> bytes:
    secret = os.environ.get("CURSOR_SECRET") or _DEFAULT_SECRET
    return hmac.new(secret.encode(), payload.encode("ascii", "replace"), hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
