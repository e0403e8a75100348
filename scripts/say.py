"""`make say TEXT='…' [REPLY_TO=<message id>] [FROM=<username or user id>] [CHAT=<chat id> | PRIVATE=1]`:
one message from the local Telegram group (or another group, or the sender's private chat with
the bot), sent to `make run`'s webhook as the Update Telegram would deliver; prints the message
and the bot's answer, each with the message id Telegram would have given it.
`make say PRESS=<message id>:<button>` presses a button under one of the bot's messages (a
callback_query), and prints the bot's answer and how the message looks afterwards.

The local group is the dev stage's first TELEGRAM_ALLOWED_CHATS entry and the bot is its
TELEGRAM_BOT_USERNAME (.chalice/config.json); CHAT names another group (a team's chat_id), and
PRIVATE=1 speaks in the sender's private chat with the bot (its id is the sender's user id, as in
Telegram). Telegram numbers the messages of each chat and keeps the one a reply answers; here a
transcript in $LOCAL_DIR/chat.jsonl does both, so REPLY_TO names any earlier message of the same
chat, the bot's included. `make run FRESH=1` starts it anew with the data.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from run_local import CHAT_TRANSCRIPT, DEFAULT_TELEGRAM_SECRET, local_dir, no_proxy_opener, stage_environment

TRANSCRIPT = CHAT_TRANSCRIPT
DEFAULT_FROM = "ivan_ops"
BOT_ID = 7000000001
CHAT_TITLE = "Дежурная смена"
# A user id for a username, stable across runs: the same person is always the same user.
FIRST_USER_ID = 111111111


class SayFailed(Exception):
    pass


def load_transcript(path: Path) -> list[dict[str, Any]]:
    """The chat's messages as the bot's edits (recorded by `make run`) left them, and the presses."""
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    messages = {(m["chat"]["id"], m["message_id"]): m for m in entries if "message_id" in m}
    for entry in entries:
        if (edit := entry.get("edited")) and (edited := messages.get((edit["chat_id"], edit["message_id"]))):
            edited.update({k: v for k, v in edit.items() if k in ("text", "reply_markup")})
    return [e for e in entries if "edited" not in e]


def messages_of(transcript: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in transcript if "message_id" in m]


def user(name: str, transcript: list[dict[str, Any]]) -> dict[str, Any]:
    """`anna_support` -> a user with that username; `222222222` -> a user without one."""
    if name.isdigit():
        return {"id": int(name), "is_bot": False, "first_name": f"User {name}"}
    for message in messages_of(transcript):
        sender = message["from"]
        if sender.get("username") == name and not sender["is_bot"]:
            return sender
    known = {m["from"]["id"] for m in messages_of(transcript) if not m["from"]["is_bot"]}
    return {"id": max(known | {FIRST_USER_ID - 1}) + 1, "is_bot": False,
            "first_name": name, "username": name}


def message_update(text: str, sender: dict[str, Any], chat: dict[str, Any],
                   transcript: list[dict[str, Any]], reply_to: int | None) -> dict[str, Any]:
    in_chat = [m for m in messages_of(transcript) if m["chat"]["id"] == chat["id"]]
    message: dict[str, Any] = {
        "message_id": _next(in_chat, "message_id"),
        "from": sender,
        "chat": chat,
        "date": int(time.time()),
        "text": text,
    }
    if reply_to is not None:
        replied = next((m for m in in_chat if m["message_id"] == reply_to), None)
        if replied is None:
            raise SayFailed(f"no message {reply_to} in this local chat yet "
                            f"(the ids are the numbers in brackets that make say printed)")
        # As Telegram nests it: the replied message itself, without what it replied to.
        message["reply_to_message"] = {k: v for k, v in replied.items()
                                       if k not in ("update_id", "reply_to_message")}
    return {"update_id": _next(transcript, "update_id", start=100000001), "message": message}


def press_update(pressed: str, sender: dict[str, Any], chat: dict[str, Any],
                 transcript: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """`2:take` or `2:Take`: the callback_query Telegram delivers when `sender` presses that button
    under message 2 of the chat; and the button's label."""
    message_id, _, wanted = pressed.partition(":")
    message = next((m for m in messages_of(transcript) if m["chat"]["id"] == chat["id"]
                    and str(m["message_id"]) == message_id.strip()), None)
    if message is None:
        raise SayFailed(f"no message {message_id!r} in this local chat yet; PRESS=<message id>:<button>, "
                        "e.g. PRESS=2:take (the ids are the numbers in brackets that make say printed)")
    offered = [b for row in (message.get("reply_markup") or {}).get("inline_keyboard") or [] for b in row]
    button = next((b for b in offered if wanted.strip().lower()
                   in (b["text"].lower(), b["callback_data"].split(":")[0])), None)
    if button is None:
        shown = ", ".join(b["text"] for b in offered) or "none"
        raise SayFailed(f"message {message_id} has no button {wanted!r}; its buttons: {shown}")
    update_id = _next(transcript, "update_id", start=100000001)
    return {"update_id": update_id, "callback_query": {
        "id": str(4_000_000_000_000 + update_id),
        "from": sender,
        "message": {k: v for k, v in message.items() if k != "update_id"},
        "chat_instance": str(-5_304_126_843_119_562_271 - chat["id"]),
        "data": button["callback_data"],
    }}, button["text"]


def buttons_shown(message: dict[str, Any]) -> str:
    """`  [Take] [Resolve]`, as the bot's message shows its buttons."""
    labels = [f"[{b['text']}]" for row in (message.get("reply_markup") or {}).get("inline_keyboard") or []
              for b in row]
    return "  " + " ".join(labels) if labels else ""


def _next(transcript: list[dict[str, Any]], field: str, start: int = 1) -> int:
    return max((m.get(field, 0) for m in transcript), default=start - 1) + 1


def deliver(port: int, secret: str, update: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram/webhook", method="POST",
        data=json.dumps(update, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json",
                 "X-Telegram-Bot-Api-Secret-Token": secret},
    )
    try:
        with no_proxy_opener().open(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise SayFailed(f"the webhook answered {error.code}: {error.read().decode(errors='replace')}")
    except OSError as error:
        raise SayFailed(f"nothing answers on port {port} ({error}): start `make run` first, "
                        "with the same PORT")


def name_of(sender: dict[str, Any]) -> str:
    return sender.get("username") or str(sender["id"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("text", nargs="?", default=os.environ.get("TEXT", ""))
    parser.add_argument("--reply-to", type=int, default=os.environ.get("REPLY_TO") or None)
    parser.add_argument("--from", dest="sender", default=os.environ.get("FROM") or DEFAULT_FROM)
    parser.add_argument("--chat", type=int, default=os.environ.get("CHAT") or None,
                        help="another group's chat id, e.g. a team's chat_id")
    parser.add_argument("--private", action="store_true", default=os.environ.get("PRIVATE", "") not in ("", "0"),
                        help="in the sender's private chat with the bot")
    parser.add_argument("--press", default=os.environ.get("PRESS") or None,
                        help="<message id>:<button>: press a button under the bot's message")
    args = parser.parse_args()
    if not args.text.strip() and not args.press:
        print("say what? make say TEXT='[operator] Самокат 42 не в сети'", file=sys.stderr)
        return 2
    if args.private and args.chat is not None:
        print("CHAT or PRIVATE=1, not both: a private chat's id is the sender's user id", file=sys.stderr)
        return 2

    settings = stage_environment()
    path = local_dir() / TRANSCRIPT
    transcript = load_transcript(path)
    sender = user(args.sender, transcript)
    chat_ids = [c.strip() for c in settings.get("TELEGRAM_ALLOWED_CHATS", "").split(",") if c.strip()]
    chat: dict[str, Any] = {"id": int(chat_ids[0]) if chat_ids else -1, "title": CHAT_TITLE, "type": "supergroup"}
    if args.chat is not None:
        chat = {"id": args.chat, "title": f"Group {args.chat}", "type": "supergroup"}
    if args.private:
        chat = {"id": sender["id"], "first_name": sender["first_name"], "type": "private"}
        if "username" in sender:
            chat["username"] = sender["username"]
    bot = {"id": BOT_ID, "is_bot": True, "first_name": "Incident Bot",
           "username": settings.get("TELEGRAM_BOT_USERNAME") or "IncidentBot"}
    port = int(os.environ.get("PORT") or 8000)
    secret = os.environ.get("TELEGRAM_SECRET_TOKEN") or DEFAULT_TELEGRAM_SECRET

    if args.press:
        return press(args.press, sender, chat, bot, port, secret, path)
    try:
        update = message_update(args.text, sender, chat, transcript, args.reply_to)
        answer = deliver(port, secret, update)
    except SayFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    said = update["message"]
    sent = [{**said, "update_id": update["update_id"]}]
    lines = [f"{name_of(said['from'])} [{said['message_id']}]: {said['text']}"]
    if answer.get("method") == "sendMessage":
        reply = {"message_id": said["message_id"] + 1, "from": bot, "chat": chat,
                 "date": int(time.time()), "text": answer["text"]}
        if "reply_markup" in answer:
            reply["reply_markup"] = answer["reply_markup"]
        sent.append(reply)
        first, *rest = answer["text"].split("\n")
        lines.append(f"{bot['username']} [{reply['message_id']}]: {first}{buttons_shown(reply)}")
        lines += [" " * (len(bot["username"]) + len(str(reply["message_id"])) + 5) + line for line in rest]
    else:
        lines.append("(no answer: the bot ignores this message; make run's log says why)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.writelines(json.dumps(m, ensure_ascii=False) + "\n" for m in sent)
    print("\n".join(lines))
    return 0


def press(pressed: str, sender: dict[str, Any], chat: dict[str, Any], bot: dict[str, Any], port: int,
          secret: str, path: Path) -> int:
    try:
        update, label = press_update(pressed, sender, chat, load_transcript(path))
        answer = deliver(port, secret, update)
    except SayFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    message_id = update["callback_query"]["message"]["message_id"]
    with path.open("a", encoding="utf-8") as file:  # the update_id is used
        file.write(json.dumps({"update_id": update["update_id"], "pressed": update["callback_query"]["data"],
                               "by": name_of(sender)}, ensure_ascii=False) + "\n")
    lines = [f"{name_of(sender)} presses [{label}] on [{message_id}]"]
    if answer.get("method") == "answerCallbackQuery":
        lines.append(f"{bot['username']} answers: {answer.get('text', '')}")
    else:
        lines.append("(no answer: the bot ignores this press; make run's log says why)")
    now = next(m for m in load_transcript(path) if m.get("message_id") == message_id
               and m["chat"]["id"] == chat["id"])
    lines.append(f"{now['from'].get('username') or name_of(now['from'])} [{message_id}] now: "
                 f"{now['text']}{buttons_shown(now)}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
