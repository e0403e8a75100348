"""Opaque, tamper-evident list cursors: the position plus the filters it was issued for, signed
with the stage's own key, and checked for the shape of a real position before it is used."""
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

# The positions the service issues: a list page's last created_key, a history page's last entry.
_MOMENT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LIST_POSITION = re.compile(rf"{_MOMENT}#\d{{20}}")
HISTORY_POSITION = re.compile(rf"history#{_MOMENT}(?:#\d{{1,6}})?")

# Used only where no key is configured at all (neither CURSOR_SECRET nor CURSOR_SECRET_PARAMETER):
# random per process, so no two runs, and nothing shipped in the package, share it.
_PROCESS_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")

NOT_ISSUED = "cursor was not issued by this service; use next_cursor from a previous page"


def encode(position: str, filters: dict[str, Any]) -> str:
    payload = _b64(json.dumps({"p": position, "f": filters}, separators=(",", ":")).encode())
    return f"{payload}.{_b64(_signature(payload, _keys()[0]))}"


def decode(cursor: str, filters: dict[str, Any], position: re.Pattern[str] | None = None) -> str:
    """The position inside `cursor`; InvalidInput unless the service issued it for these filters
    (and, with `position`, unless it has that shape)."""
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
        raise InvalidInput("cursor was issued for other filters; repeat the same status and source")
    return data["p"]


def _keys() -> list[bytes]:
    """The signing key first, then keys still accepted (comma-separated: rotation without
    breaking the cursors clients hold)."""
    configured = [k.strip() for k in secrets.read(secrets.CURSOR_SECRET).split(",") if k.strip()]
    if configured:
        return [k.encode("utf-8") for k in configured]
    if secrets.parameter_name(secrets.CURSOR_SECRET):
        # Named but empty: refuse to sign with anything guessable; the log says which parameter.
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
