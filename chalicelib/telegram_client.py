"""The one way out to Telegram (`sendMessage`), used only by the notifier.

Failures raise SendFailed so Lambda retries; why and how: docs/notifications.md.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

DEFAULT_API_URL = "https://api.telegram.org"
TIMEOUT_SECONDS = 5.0
# A longer wait would hold the stream; Lambda's retry waits instead.
MAX_INLINE_RETRY_AFTER = 5


class SendFailed(Exception):
    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class BotApi:
    token: str
    base_url: str = DEFAULT_API_URL
    timeout: float = TIMEOUT_SECONDS

    @classmethod
    def from_environment(cls, token: str) -> "BotApi":
        return cls(token=token, base_url=os.environ.get("TELEGRAM_API_URL") or DEFAULT_API_URL,
                   timeout=float(os.environ.get("TELEGRAM_TIMEOUT_SECONDS") or TIMEOUT_SECONDS))

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None) -> None:
        """`thread_id`: a forum topic of the group (`message_thread_id`)."""
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text, "disable_web_page_preview": True}
        if thread_id is not None:
            payload["message_thread_id"] = thread_id
        try:
            self._call("sendMessage", payload)
        except SendFailed as failed:
            if failed.retry_after is None or failed.retry_after > MAX_INLINE_RETRY_AFTER:
                raise
            time.sleep(failed.retry_after)
            self._call("sendMessage", payload)

    def _call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.base_url.rstrip('/')}/bot{self.token}/{method}",
            data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            answer = _json_or_empty(error.read())
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            raise SendFailed(f"{method}: HTTP {error.code} {answer.get('description', '')}".strip(),
                             retry_after if isinstance(retry_after, int) else None) from None
        except (OSError, ValueError) as error:  # network, or an unreadable answer
            raise SendFailed(f"{method}: {type(error).__name__}: {error}") from None


class BotTokenUnavailable(Exception):
    """Told to notify with no readable token: the invocation fails, so it is retried and the
    Lambda-errors alarm fires, and no notice is marked sent."""


@dataclass
class Console:
    """A local run with no bot token (NOTIFY_TO_CONSOLE=1): print instead."""

    write: Callable[[str], None] = print

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None) -> None:
        topic = f" topic {thread_id}" if thread_id is not None else ""
        self.write(f"[telegram → {chat_id}{topic}] {text}")


class Lazy:
    """Reads the token on the first message: a run with nothing to send needs none."""

    def __init__(self) -> None:
        self._sender: BotApi | Console | None = None

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None) -> None:
        if self._sender is None:
            self._sender = from_environment()
        self._sender.send_message(chat_id, text, thread_id)


def from_environment() -> BotApi | Console:
    """Only the local run (NOTIFY_TO_CONSOLE=1) prints without a token; anywhere else a missing,
    empty or unreadable token raises."""
    from chalicelib import secrets

    token = secrets.read(secrets.TELEGRAM_BOT_TOKEN).strip()
    if token:
        return BotApi.from_environment(token)
    if os.environ.get("NOTIFY_TO_CONSOLE") == "1":
        return Console()
    raise BotTokenUnavailable(
        f"no bot token: {secrets.parameter_name(secrets.TELEGRAM_BOT_TOKEN) or 'no parameter'} "
        "is missing or empty (TELEGRAM_BOT_TOKEN is not set either)")


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
