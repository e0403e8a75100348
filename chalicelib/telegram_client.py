"""The way out to Telegram: `sendMessage` for the notifier, `editMessageText` and
`editMessageReplyMarkup` for a pressed button's message.

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
NOT_MODIFIED = "message is not modified"


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

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None,
                     buttons: dict[str, Any] | None = None) -> None:
        """`thread_id`: a forum topic of the group (`message_thread_id`); `buttons`: an inline
        keyboard (`reply_markup`, chalicelib/buttons.py)."""
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text, "disable_web_page_preview": True}
        if thread_id is not None:
            payload["message_thread_id"] = thread_id
        if buttons is not None:
            payload["reply_markup"] = buttons
        self._call_once_more_after_429("sendMessage", payload)

    def edit_message_text(self, chat_id: int | str, message_id: int, text: str,
                          buttons: dict[str, Any] | None) -> None:
        """The message's new text and buttons (None or an empty keyboard: none)."""
        payload: dict[str, Any] = {"chat_id": chat_id, "message_id": message_id, "text": text,
                                   "disable_web_page_preview": True}
        payload["reply_markup"] = buttons if buttons is not None else {"inline_keyboard": []}
        self._edit("editMessageText", payload)

    def edit_message_reply_markup(self, chat_id: int | str, message_id: int,
                                  buttons: dict[str, Any] | None) -> None:
        """Only the buttons; the text stays as it is."""
        self._edit("editMessageReplyMarkup", {
            "chat_id": chat_id, "message_id": message_id,
            "reply_markup": buttons if buttons is not None else {"inline_keyboard": []}})

    def _edit(self, method: str, payload: dict[str, Any]) -> None:
        try:
            self._call_once_more_after_429(method, payload)
        except SendFailed as failed:
            # Telegram refuses an edit that changes nothing: the message already shows it.
            if NOT_MODIFIED not in str(failed):
                raise

    def _call_once_more_after_429(self, method: str, payload: dict[str, Any]) -> None:
        try:
            self._call(method, payload)
        except SendFailed as failed:
            if failed.retry_after is None or failed.retry_after > MAX_INLINE_RETRY_AFTER:
                raise
            time.sleep(failed.retry_after)
            self._call(method, payload)

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
    """A local run with no bot token (NOTIFY_TO_CONSOLE=1): print instead. `transcript`: the local
    chat's file (scripts/say.py), where edits are recorded too, so the simulated chat shows a
    pressed message as Telegram would."""

    write: Callable[[str], None] = print
    transcript: str | None = None

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None,
                     buttons: dict[str, Any] | None = None) -> None:
        topic = f" topic {thread_id}" if thread_id is not None else ""
        self.write(f"[telegram → {chat_id}{topic}] {text}{_shown(buttons)}")

    def edit_message_text(self, chat_id: int | str, message_id: int, text: str,
                          buttons: dict[str, Any] | None) -> None:
        self.write(f"[telegram → {chat_id} edits message {message_id}] {text}{_shown(buttons)}")
        self._record(chat_id, message_id, {"text": text, "reply_markup": buttons or {"inline_keyboard": []}})

    def edit_message_reply_markup(self, chat_id: int | str, message_id: int,
                                  buttons: dict[str, Any] | None) -> None:
        self.write(f"[telegram → {chat_id} edits message {message_id}'s buttons]{_shown(buttons) or ' none'}")
        self._record(chat_id, message_id, {"reply_markup": buttons or {"inline_keyboard": []}})

    def _record(self, chat_id: int | str, message_id: int, changes: dict[str, Any]) -> None:
        if self.transcript:
            edit = {"edited": {"chat_id": int(chat_id), "message_id": message_id, **changes}}
            with open(self.transcript, "a", encoding="utf-8") as file:
                file.write(json.dumps(edit, ensure_ascii=False) + "\n")


class Lazy:
    """Reads the token on the first message: a run with nothing to send needs none."""

    def __init__(self) -> None:
        self._sender: BotApi | Console | None = None

    def send_message(self, chat_id: str, text: str, thread_id: int | None = None,
                     buttons: dict[str, Any] | None = None) -> None:
        if self._sender is None:
            self._sender = from_environment()
        self._sender.send_message(chat_id, text, thread_id, buttons)

    def edit_message_text(self, chat_id: int | str, message_id: int, text: str,
                          buttons: dict[str, Any] | None) -> None:
        if self._sender is None:
            self._sender = from_environment()
        self._sender.edit_message_text(chat_id, message_id, text, buttons)

    def edit_message_reply_markup(self, chat_id: int | str, message_id: int,
                                  buttons: dict[str, Any] | None) -> None:
        if self._sender is None:
            self._sender = from_environment()
        self._sender.edit_message_reply_markup(chat_id, message_id, buttons)


def from_environment() -> BotApi | Console:
    """Only the local run (NOTIFY_TO_CONSOLE=1) prints without a token; anywhere else a missing,
    empty or unreadable token raises."""
    from chalicelib import secrets

    local = os.environ.get("NOTIFY_TO_CONSOLE") == "1"
    # Locally a token, if any, is in the environment: `chalice local` still sees the stage's
    # parameter name, and no SSM answers there.
    token = (os.environ.get(secrets.TELEGRAM_BOT_TOKEN.value_variable, "") if local
             else secrets.read(secrets.TELEGRAM_BOT_TOKEN)).strip()
    if token:
        return BotApi.from_environment(token)
    if local:
        return Console(transcript=os.environ.get("LOCAL_CHAT_TRANSCRIPT") or None)
    raise BotTokenUnavailable(
        f"no bot token: {secrets.parameter_name(secrets.TELEGRAM_BOT_TOKEN) or 'no parameter'} "
        "is missing or empty (TELEGRAM_BOT_TOKEN is not set either)")


def _shown(buttons: dict[str, Any] | None) -> str:
    """`  [Take] [Resolve]`: the buttons, as the console shows them."""
    rows = (buttons or {}).get("inline_keyboard") or []
    labels = [f"[{button['text']}]" for row in rows for button in row]
    return "  " + " ".join(labels) if labels else ""


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
