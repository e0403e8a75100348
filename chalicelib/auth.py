"""API keys: which are configured, and whether a request presented one of them."""
from __future__ import annotations

import hashlib
import hmac

from chalicelib import secrets


def configured_api_keys() -> list[str]:
    """Comma-separated; from API_KEYS locally, from the SSM parameter API_KEYS_PARAMETER in Lambda."""
    return [key.strip() for key in secrets.read(secrets.API_KEYS).split(",") if key.strip()]


def is_valid_key(presented: str | None, keys: list[str]) -> bool:
    """Constant time for each configured key; no keys configured means no access."""
    if not presented or not keys:
        return False
    candidate = presented.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key.encode("utf-8"))
    return matched


def configured_telegram_secrets() -> list[str]:
    """Every accepted secret_token: comma-separated (Telegram's tokens have no commas), so a new one
    can be accepted before setWebhook switches to it; none configured means nothing gets in."""
    return [s.strip() for s in secrets.read(secrets.TELEGRAM_SECRET).split(",") if s.strip()]


def caller_id(api_key: str) -> str:
    """A stable, non-secret name for the caller behind an API key (16 hex digits of its SHA-256):
    scopes what a caller stores, such as Idempotency-Keys, without storing the key itself."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def configured_integration_keys() -> list[str]:
    """PagerDuty routing keys: INTEGRATION_KEYS locally, the SSM parameter INTEGRATION_KEYS_PARAMETER in Lambda."""
    return [key.strip() for key in secrets.read(secrets.INTEGRATION_KEYS).split(",") if key.strip()]


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of `Authorization: Bearer <token>` (what Alertmanager's
    http_config.authorization and Grafana's webhook send); None for any other header."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
