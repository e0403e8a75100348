"""A fake Telegram Bot API on 127.0.0.1, in a thread: records every call (sendMessage,
editMessageText, editMessageReplyMarkup, answerCallbackQuery …), keeps each chat's messages as
edits leave them, refuses what Telegram refuses (a button's callback_data over 64 bytes, an edit
that changes nothing, an edit of a message it never sent), and can answer 429 with retry_after,
500, or hang, as the real one sometimes does."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_CALLBACK_DATA = 64


class FakeBotApi:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []  # sendMessage bodies, in order
        self.calls: list[tuple[str, dict[str, Any]]] = []  # (method, body) of every accepted call
        self.refused: list[tuple[str, dict[str, Any], str]] = []  # (method, body, description)
        self.paths: list[str] = []
        # queued: (status, body), "hang", or (200, None): answer as usual
        self.answers: list[tuple[int, dict[str, Any] | None] | str] = []
        self.hang_seconds = 10.0
        # (chat_id as str, message_id) -> the message as its latest edit left it
        self.chats: dict[tuple[str, int], dict[str, Any]] = {}
        self._next_id: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def texts(self) -> list[str]:
        return [message["text"] for message in self.messages]

    def called(self, method: str) -> list[dict[str, Any]]:
        """The bodies of every accepted call of `method`, in order."""
        return [body for name, body in self.calls if name == method]

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any]:
        """A sent message as it is now: `text` and `reply_markup` after the latest edit."""
        return self.chats[(str(chat_id), message_id)]

    def webhook_reply(self, answer: dict[str, Any]) -> dict[str, Any]:
        """What Telegram does with a method the webhook answered with (`{"method": …, …}`): it
        calls it, so it is recorded and refused here as a direct call would be."""
        method = answer["method"]
        status, reply = self._apply(method, {k: v for k, v in answer.items() if k != "method"})
        assert status == 200, reply
        return reply

    def __enter__(self) -> "FakeBotApi":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _apply(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """What Telegram would answer to an accepted HTTP request."""
        with self._lock:
            if (reason := _refusal(method, body, self.chats)) is not None:
                self.refused.append((method, body, reason))
                return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {reason}"}
            self.calls.append((method, body))
            chat = str(body.get("chat_id"))
            if method == "sendMessage":
                self.messages.append(body)
                message_id = self._next_id[chat] = self._next_id.get(chat, 0) + 1
                sent = {"message_id": message_id, **body}
                self.chats[(chat, message_id)] = sent
                return 200, {"ok": True, "result": sent}
            if method in ("editMessageText", "editMessageReplyMarkup"):
                edited = self.chats[(chat, body["message_id"])]
                if method == "editMessageText":
                    edited["text"] = body["text"]
                edited["reply_markup"] = body.get("reply_markup") or {"inline_keyboard": []}
                return 200, {"ok": True, "result": edited}
            return 200, {"ok": True, "result": True}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.paths.append(self.path)
                answer = fake.answers.pop(0) if fake.answers else None
                if answer == "hang":
                    time.sleep(fake.hang_seconds)
                    return
                if answer is None or answer[0] == 200:
                    answer = fake._apply(self.path.rsplit("/", 1)[-1], body)
                self._answer(*answer)

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _refusal(method: str, body: dict[str, Any], chats: dict[tuple[str, int], dict[str, Any]]) -> str | None:
    for row in (body.get("reply_markup") or {}).get("inline_keyboard") or []:
        for button in row:
            if len(str(button.get("callback_data", "")).encode("utf-8")) > MAX_CALLBACK_DATA:
                return "BUTTON_DATA_INVALID"
    if method in ("editMessageText", "editMessageReplyMarkup"):
        current = chats.get((str(body.get("chat_id")), body.get("message_id")))
        if current is None:
            return "message to edit not found"
        same_text = method == "editMessageReplyMarkup" or current.get("text") == body.get("text")
        markup = body.get("reply_markup") or {"inline_keyboard": []}
        if same_text and (current.get("reply_markup") or {"inline_keyboard": []}) == markup:
            return ("message is not modified: specified new message content and reply markup are "
                    "exactly the same as a current content and reply markup of the message")
    return None


def too_many_requests(retry_after: int) -> tuple[int, dict[str, Any]]:
    return 429, {"ok": False, "error_code": 429,
                 "description": f"Too Many Requests: retry after {retry_after}",
                 "parameters": {"retry_after": retry_after}}


def server_error() -> tuple[int, dict[str, Any]]:
    return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
