"""Secrets (API keys, the Telegram secret token): where each stage reads them from.

A secret's value is, in this order:
  1. the plain environment variable (`API_KEYS`, `TELEGRAM_SECRET_TOKEN`) when it is set and
     not empty: local runs and tests;
  2. otherwise the SSM Parameter Store SecureString named by `*_PARAMETER`
     (`API_KEYS_PARAMETER=/incidents/prod/api-keys`): Lambda, where config.json names the
     parameter and never holds the value;
  3. otherwise "" — which the callers treat as "nothing configured", i.e. no access.

A parameter that is missing, empty or unreadable (no permission, SSM down) also yields "",
never an exception: a request then gets 401, not 500 and not open access. A value read is
kept for CACHE_SECONDS per container, so a rotated or revoked key takes effect within that
time without a redeploy; a failed read is retried after RETRY_SECONDS, not on every request.
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

# A slow SSM must not hold a request for long: one quick retry, then "no access".
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

_cache: dict[str, tuple[str, float]] = {}  # parameter name -> (value, expires at, monotonic)
_lock = threading.Lock()


def read(secret: Secret) -> str:
    """The secret's value, or "" when none is configured or it cannot be read."""
    value = os.environ.get(secret.value_variable, "")
    if value.strip():
        return value
    parameter = os.environ.get(secret.parameter_variable, "").strip()
    if not parameter:
        return ""
    return _parameter_value(parameter)


def clear_cache() -> None:
    """Forget every value read and the SSM client (tests; each moto mock needs a new client)."""
    with _lock:
        _cache.clear()
    _ssm_client.cache_clear()


def _parameter_value(name: str) -> str:
    now = time.monotonic()
    with _lock:
        cached = _cache.get(name)
    if cached is not None and cached[1] > now:
        return cached[0]
    value, ok = _fetch(name)
    with _lock:
        _cache[name] = (value, now + (CACHE_SECONDS if ok else RETRY_SECONDS))
    return value


def _fetch(name: str) -> tuple[str, bool]:
    try:
        response = _ssm_client().get_parameter(Name=name, WithDecryption=True)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        logger.error("cannot read SSM parameter; access is refused until it can be read",
                     extra={"parameter": name, "error_code": code})
        return "", False
    except BotoCoreError as error:
        logger.error("SSM does not answer; access is refused until it does",
                     extra={"parameter": name, "error": type(error).__name__})
        return "", False
    value = response.get("Parameter", {}).get("Value", "")
    if not value.strip():
        logger.error("SSM parameter is empty; access is refused", extra={"parameter": name})
    return value, True


@functools.lru_cache(maxsize=1)
def _ssm_client() -> Any:
    """Built on first use, not at import: a container that never needs a parameter never pays for it."""
    return aws.client("ssm", SSM_CONFIG)  # botocore's, sharing the store's session
