"""API keys: which are configured, and which of them (if any) a request presented.

API_KEYS is a comma-separated list; each entry is `key` (name `api`), `name=key` or
`name:read=key`. The rule that tells them apart, and what happens to a malformed entry:
docs/security.md ("API keys").
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field

from chalicelib import secrets

logger = logging.getLogger(__name__)

DEFAULT_NAME = "api"
# Before the first "=": a name, optionally ":read". Anything else before it (upper case, "+",
# "/") or "=" right after it (base64 padding) leaves the entry one bare key, as it always was.
NAMED_ENTRY = re.compile(r"(?P<name>[a-z0-9_-]{1,64})(?P<read>:read)?\s*=\s*(?P<secret>[^=\s].*)?",
                         re.DOTALL)
NAME_RULE = "1-64 of a-z, 0-9, '_' and '-'"
# The one method a read-only key may use (contract v3): HEAD and OPTIONS are refused too.
READ_METHODS = frozenset({"GET"})


@dataclass(frozen=True)
class ApiKey:
    name: str
    read_only: bool
    secret: str = field(repr=False)  # never in a log line or a traceback

    @property
    def by(self) -> str:
        """Who acted, for history entries: bare keys (name `api`) stay `api` as before names."""
        return DEFAULT_NAME if self.name == DEFAULT_NAME else f"{DEFAULT_NAME}:{self.name}"

    @property
    def caller_id(self) -> str:
        """By the key's value, not its name: two keys never share Idempotency-Keys."""
        return caller_id(self.secret)

    def may(self, method: str) -> bool:
        return not self.read_only or method.upper() in READ_METHODS

    def refusal(self, method: str) -> str:
        """The 403 message: the key's name, never its value."""
        return (f"the API key named '{self.name}' is read-only: it may only GET, not "
                f"{method.upper()}; changes need a key configured without ':read'")


def configured_api_keys() -> tuple[ApiKey, ...]:
    return parse_api_keys(secrets.read(secrets.API_KEYS))


@functools.lru_cache(maxsize=4)
def parse_api_keys(text: str) -> tuple[ApiKey, ...]:
    """Once per value of the secret. A malformed entry is logged (never its value) and left out:
    it grants nothing, and the other entries keep working."""
    parsed: list[ApiKey] = []
    for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
        if not entry:
            continue
        named = NAMED_ENTRY.fullmatch(entry)
        if named is None:
            label, equals, _ = entry.partition("=")
            if equals and ":" in label:  # no generated key has one: a name mistyped?
                logger.warning("API_KEYS entry taken as one bare key: the text before its '=' is not "
                               f"a name ({NAME_RULE}) or a name and ':read'", extra={"entry": position})
            parsed.append(ApiKey(DEFAULT_NAME, False, entry))
        elif named["secret"] is None:
            # "partner=" (a value forgotten) must not become a key anyone can guess.
            logger.error("API_KEYS entry ignored: no key after its name",
                         extra={"entry": position, "key_name": named["name"]})
        else:
            parsed.append(ApiKey(named["name"], bool(named["read"]), named["secret"]))
    return _without_conflicts(parsed)


def _without_conflicts(keys: list[ApiKey]) -> tuple[ApiKey, ...]:
    """One value listed under two names or accesses could only be guessed at: none of them count."""
    seen: dict[str, set[tuple[str, bool]]] = {}
    for key in keys:
        seen.setdefault(key.secret, set()).add((key.name, key.read_only))
    kept: list[ApiKey] = []
    for key in keys:
        meanings = seen[key.secret]
        if len(meanings) > 1:
            logger.error("API_KEYS entry ignored: the same key is listed under another name or access",
                         extra={"key_names": sorted({name for name, _ in meanings})})
        elif key not in kept:
            kept.append(key)
    return tuple(kept)


def authenticate(presented: str | None, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """Constant time against every key (no early exit); no keys configured means no access."""
    if not presented or not keys:
        return None
    candidate = presented.encode("utf-8", "surrogatepass")
    found = None
    for key in keys:
        if hmac.compare_digest(candidate, key.secret.encode("utf-8")):
            found = key
    return found


def writable_key(text: str) -> str | None:
    """For the local scripts: the value of the first configured key that may make changes."""
    return next((key.secret for key in parse_api_keys(text) if not key.read_only), None)


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
