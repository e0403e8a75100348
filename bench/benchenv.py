"""Shared set-up for the benchmark scripts: paths and a fake AWS environment.

Nothing here may ever reach a real AWS account: fake credentials, a fake-looking region,
no profile, no endpoint override, API keys from the environment (no SSM).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
REFERENCE = BENCH / "reference"
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
REFERENCE_PYTHON = BENCH / ".venv" / "bin" / "python"

API_KEY = "bench-key"
TABLE_NAME = "incidents-bench"

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "TABLE_NAME": TABLE_NAME,
    "API_KEYS": API_KEY,
    "CURSOR_SECRET": "bench-cursor-key",
}
# Anything that could send a request elsewhere, or read a secret from SSM instead of API_KEYS.
UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
         "API_KEYS_PARAMETER", "TELEGRAM_SECRET_PARAMETER", "CURSOR_SECRET_PARAMETER")


def use_fake_aws() -> None:
    """Put the project on sys.path and fake AWS settings into os.environ (this process)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.update(FAKE_ENV)
    for name in UNSET:
        os.environ.pop(name, None)


def subprocess_env() -> dict[str, str]:
    """The same settings for a child process (laid over the current environment by coldstart.measure)."""
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(FAKE_ENV)
    return env
