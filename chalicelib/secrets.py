"""Secrets: the plain variable when non-blank (local, tests), else the SSM SecureString its
`*_PARAMETER` names (Lambda), else "" (no access). Caching and failures: docs/security.md.
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

# A slow SSM must not hold a request: one quick retry, then the last good value (or 503).
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
# PagerDuty routing keys for POST /v2/enqueue.
INTEGRATION_KEYS = Secret("INTEGRATION_KEYS", "INTEGRATION_KEYS_PARAMETER")
CURSOR_SECRET = Secret("CURSOR_SECRET", "CURSOR_SECRET_PARAMETER")


class SecretUnavailable(Exception):
    """Its parameter was never read in this container: 503, not a misleading 401."""


@dataclass(frozen=True)
class _Cached:
    value: str | None  # None: never read successfully
    fresh_until: float  # monotonic


_cache: dict[str, _Cached] = {}
_lock = threading.Lock()


def read(secret: Secret) -> str:
    """Empty when none is configured; SecretUnavailable when its parameter was never readable."""
    value = os.environ.get(secret.value_variable, "")
    if value.strip():
        return value
    parameter = parameter_name(secret)
    if not parameter:
        return ""
    return _parameter_value(parameter)


def parameter_name(secret: Secret) -> str:
    return os.environ.get(secret.parameter_variable, "").strip()


def clear_cache() -> None:
    """For tests: each moto mock needs a new SSM client."""
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
    """Empty when SSM says it does not exist; None when unreadable. Never logs a value."""
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
    """Built on first use: a container that needs no parameter never pays for it."""
    return aws.client("ssm", SSM_CONFIG)  # shares the store's botocore session
