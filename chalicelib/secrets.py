"""Secrets (API keys, the Telegram secret token, the cursor-signing key): where each stage
reads them from, and what happens when that fails.

A secret's value is, in this order:
  1. the plain environment variable (`API_KEYS`, `TELEGRAM_SECRET_TOKEN`, `CURSOR_SECRET`) when it
     is set and not empty: local runs and tests;
  2. otherwise the SSM Parameter Store SecureString named by `*_PARAMETER`
     (`API_KEYS_PARAMETER=/incidents/prod/api-keys`): Lambda, where config.json names the
     parameter and never holds the value;
  3. otherwise "" — which the callers treat as "nothing configured", i.e. no access.

A parameter that SSM says is missing, or that is empty, also yields "" (no access, 401). A value
read is kept for CACHE_SECONDS per container, so a rotated or revoked key takes effect within
that time without a redeploy. When a refresh fails (throttled, SSM down, no permission) the last
good value keeps being served and the failure is logged; the read is tried again after
RETRY_SECONDS, not on every request. A parameter that could never be read raises
SecretUnavailable (the API answers 503 with Retry-After, never a misleading 401), and is tried
again after UNREAD_RETRY_SECONDS.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws

CACHE_SECONDS = 300.0
RETRY_SECONDS = 10.0
UNREAD_RETRY_SECONDS = 1.0

# A slow SSM must not hold a request for long: one quick retry, then the last good value (or 503).
SSM_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=2,
    read_timeout=3,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Secret:
    value_variable: str
    parameter_variable: str


API_KEYS = Secret("API_KEYS", "API_KEYS_PARAMETER")
TELEGRAM_SECRET = Secret("TELEGRAM_SECRET_TOKEN", "TELEGRAM_SECRET_PARAMETER")
TELEGRAM_BOT_TOKEN = Secret("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN_PARAMETER")
# PagerDuty Events API v2 routing keys accepted by POST /v2/enqueue (comma-separated).
INTEGRATION_KEYS = Secret("INTEGRATION_KEYS", "INTEGRATION_KEYS_PARAMETER")
CURSOR_SECRET = Secret("CURSOR_SECRET", "CURSOR_SECRET_PARAMETER")


class SecretUnavailable(Exception):
    """A secret's parameter has never been read successfully in this container."""


@dataclass(frozen=True)
class _Cached:
    value: str | None  # None: never read successfully
    fresh_until: float  # monotonic; past it the next read asks SSM again


_cache: dict[str, _Cached] = {}  # parameter name -> what was read last
_lock = threading.Lock()


def read(secret: Secret) -> str:
    """The secret's value, or "" when none is configured; SecretUnavailable when its parameter
    has never been readable."""
    value = os.environ.get(secret.value_variable, "")
    if value.strip():
        return value
    parameter = parameter_name(secret)
    if not parameter:
        return ""
    return _parameter_value(parameter)


def parameter_name(secret: Secret) -> str:
    """The SSM parameter the stage names for the secret; "" when it names none."""
    return os.environ.get(secret.parameter_variable, "").strip()


def clear_cache() -> None:
    """Forget every value read and the SSM client (tests; each moto mock needs a new client)."""
    with _lock:
        _cache.clear()
    _ssm_client.cache_clear()


def _parameter_value(name: str) -> str:
    now = time.monotonic()
    with _lock:
        cached = _cache.get(name)
    if cached is None or cached.fresh_until <= now:
        cached = _refresh(name, cached, now)
    if cached.value is None:
        raise SecretUnavailable(f"the secret in SSM parameter {name} could not be read yet")
    return cached.value


def _refresh(name: str, previous: _Cached | None, now: float) -> _Cached:
    value = _fetch(name)
    if value is not None:
        cached = _Cached(value, now + CACHE_SECONDS)
    elif previous is not None and previous.value is not None:
        logger.warning("SSM refresh failed; serving the last value read until it succeeds",
                       extra={"parameter": name, "retry_in_s": RETRY_SECONDS})
        cached = _Cached(previous.value, now + RETRY_SECONDS)
    else:
        cached = _Cached(None, now + UNREAD_RETRY_SECONDS)
    with _lock:
        _cache[name] = cached
    return cached


def _fetch(name: str) -> str | None:
    """The parameter's value; "" when SSM says it does not exist; None when it could not be read.
    Logs the parameter's name and the error code, never a value."""
    try:
        response = _ssm_client().get_parameter(Name=name, WithDecryption=True)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ParameterNotFound":
            logger.error("SSM parameter does not exist; access is refused", extra={"parameter": name})
            return ""
        logger.error("cannot read SSM parameter", extra={"parameter": name, "error_code": code})
        return None
    except BotoCoreError as error:
        logger.error("SSM does not answer", extra={"parameter": name, "error": type(error).__name__})
        return None
    value = response.get("Parameter", {}).get("Value", "")
    if not value.strip():
        logger.error("SSM parameter is empty; access is refused", extra={"parameter": name})
    return value


@functools.lru_cache(maxsize=1)
def _ssm_client() -> Any:
    """Built on first use, not at import: a container that never needs a parameter never pays for it."""
    return aws.client("ssm", SSM_CONFIG)  # botocore's, sharing the store's session
