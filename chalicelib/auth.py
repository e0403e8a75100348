"""API keys: which are configured, and whether a request presented one of them."""
from __future__ import annotations

import hmac
import os


def configured_api_keys() -> list[str]:
    return [key.strip() for key in os.environ.get("API_KEYS", "").split(",") if key.strip()]


def is_valid_key(presented: str | None, keys: list[str]) -> bool:
    """Constant time for each configured key; no keys configured means no access."""
    if not presented or not keys:
        return False
    candidate = presented.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return matched
