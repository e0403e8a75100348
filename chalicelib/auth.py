"""API keys: which are configured, and whether a request presented one of them."""
from __future__ import annotations

import hashlib
import hmac

from chalicelib import secrets


def configured_api_keys() -> list[str]:
    return [key.strip() for key in secrets.read(secrets.API_KEYS).split(",") if key.strip()]


def is_valid_key(presented: str | None, keys: list[str]) -> bool:
    """Constant time against every key; no keys configured means no access."""
    if not presented or not keys:
        return False
    candidate = presented.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return matched


def configured_telegram_secrets() -> list[str]:
    """Several (tokens have no commas): a new one is accepted before setWebhook switches."""
    return [s.strip() for s in secrets.read(secrets.TELEGRAM_SECRET).split(",") if s.strip()]


def caller_id(api_key: str) -> str:
    """Non-secret name for a key's caller: scopes Idempotency-Keys without storing the key."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def configured_integration_keys() -> list[str]:
    return [key.strip() for key in secrets.read(secrets.INTEGRATION_KEYS).split(",") if key.strip()]


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Authorization: Bearer <token>` (Alertmanager, Grafana); None for any other."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
