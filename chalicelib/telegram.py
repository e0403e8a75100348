"""Telegram updates -> commands, and the bot's reply texts. Pure: no I/O.

Grammar, and what is ignored and why: docs/telegram.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from chalicelib import buttons
from chalicelib.incidents import MAX_DESCRIPTION, MAX_NOTE, Source, Status

MAX_MESSAGE = 4096
OPEN_LIST_LIMIT = 10
CREATED_PREVIEW = 200
LIST_PREVIEW = 80
LINE_PREVIEW = 200
# Telegram shows at most 200 characters of a callback query's answer.
MAX_PRESS_ANSWER = 200

MALFORMED = "malformed update"
UNSUPPORTED = "unsupported update"
EDITED = "edited message"
CHANNEL_POST = "channel post"
CHAT_NOT_ALLOWED = "chat not allowed"
NO_TEXT = "no text"
NOT_A_COMMAND = "not a command"
EMPTY_DESCRIPTION = "empty description"
OTHER_BOT = "command for another bot"
REPLY_NOT_TO_BOT = "reply is not to the bot"
NO_INCIDENT_IN_REPLY = "replied message names no single incident"
PRIVATE_CHAT = "private chat: only /start is served there"
NO_MESSAGE = "pressed message is not available"
UNKNOWN_BUTTON = "button not known"


@dataclass(frozen=True)
class Context:
    chat_id: int
    message_id: int
    by: str
    # Details of the message, not of which message it is: left out of ==.
    username: str | None = field(default=None, compare=False)  # as written; None: they have none
    sent_at: int | None = field(default=None, compare=False)  # the message's `date`, Unix seconds
    topic: int | None = field(default=None, compare=False)  # a forum topic's message_thread_id


@dataclass(frozen=True)
class CreateIncident:
    context: Context
    description: str
    source: str


@dataclass(frozen=True)
class ChangeStatus:
    context: Context
    incident_id: int
    status: str
    note: str | None


@dataclass(frozen=True)
class ListOpen:
    context: Context


@dataclass(frozen=True)
class Mute:
    context: Context
    minutes: int  # 0: unmute


@dataclass(frozen=True)
class AddNote:
    context: Context
    incident_id: int
    note: str


@dataclass(frozen=True)
class ShowStats:
    context: Context


@dataclass(frozen=True)
class StartPrivate:
    """/start in a private chat with the bot: link the sender's username to this chat."""
    context: Context
    user_id: int


@dataclass(frozen=True)
class ShowOnCall:
    context: Context


@dataclass(frozen=True)
class TakeOnCall:
    """/override 4h: the sender on call from now; `minutes` None when the duration is not understood."""
    context: Context
    minutes: int | None
    given: str


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class ButtonPress:
    """A `callback_query`: `context` is the pressed message's chat and id, `by` the presser."""
    query_id: str
    context: Context
    press: buttons.Press | None  # None: data this service does not (or no longer) put on a button
    private: bool = False


Command = (CreateIncident | ChangeStatus | AddNote | ListOpen | ShowStats | Mute | StartPrivate
           | ShowOnCall | TakeOnCall | Ignore)

MAX_MUTE_MINUTES = 7 * 24 * 60
_DURATION = re.compile(r"([0-9]{1,4})\s*(m|min|h|d)?", re.I)
_DURATION_MINUTES = {"m": 1, "min": 1, "h": 60, "d": 24 * 60}
BAD_DURATION = "mute duration not understood"
# /override needs its unit: "4" alone could be minutes or hours, and a shift is no place to guess.
_OVERRIDE_DURATION = re.compile(r"([0-9]{1,5})\s*(m|min|h|d)", re.I)
EMPTY_NOTE = "empty note"
_NOTE_WORD = re.compile(r"(?:note|заметка)(?!\w)(.*)", re.S | re.I)

_TAG_SOURCES: dict[str, Source] = {
    "operator": Source.OPERATOR,
    "оператор": Source.OPERATOR,
    "monitoring": Source.MONITORING,
    "мониторинг": Source.MONITORING,
    "partner": Source.PARTNER,
    "партнер": Source.PARTNER,
    "партнёр": Source.PARTNER,
}
_STATUS_WORDS: dict[str, Status] = {
    "fixed": Status.RESOLVED,
    "resolved": Status.RESOLVED,
    "done": Status.RESOLVED,
    "решено": Status.RESOLVED,
    "исправлено": Status.RESOLVED,
    "take": Status.IN_PROGRESS,
    "in progress": Status.IN_PROGRESS,
    "in_progress": Status.IN_PROGRESS,
    "в работе": Status.IN_PROGRESS,
    "close": Status.CLOSED,
    "closed": Status.CLOSED,
    "закрыто": Status.CLOSED,
}

_TAG = re.compile(r"\[\s*(\w+)\s*\](.*)", re.S)
_SLASH = re.compile(r"/(\w+)(?:@(\w+))?(?:\s+(.*))?", re.S)
_EXPLICIT_ID = re.compile(r"#([0-9]{1,18})(?!\w)[:,.]?\s*(.*)", re.S)
_STATUS = re.compile(
    "("
    + "|".join(
        re.escape(word).replace(r"\ ", r"\s+")
        for word in sorted(_STATUS_WORDS, key=len, reverse=True)
    )
    + r")(?!\w)(.*)",
    re.S | re.I,
)
# Bot lines about one incident start so; previews are one line, so a quoted #id never does.
_BOT_LINE_ID = re.compile(r"^(?:Incident )?#([0-9]{1,18})(?!\w)", re.M)
_CHAT_ID = re.compile(r"-?[0-9]{1,20}")
_NOTE_PUNCTUATION = ":,.;-–— \t\r\n"


def update_id_of(update: object) -> int | None:
    if not isinstance(update, dict):
        return None
    return _int(update.get("update_id"))


def chat_id_of(update: object) -> int | None:
    if not isinstance(update, dict):
        return None
    callback = update.get("callback_query")
    bodies = [update.get(kind) for kind in ("message", "edited_message", "channel_post", "edited_channel_post")]
    for body in bodies + [callback.get("message") if isinstance(callback, dict) else None]:
        if isinstance(body, dict) and isinstance(body.get("chat"), dict):
            return _int(body["chat"].get("id"))
    return None


def parse_update(
    update: object, allowed_chat_ids: frozenset[int], *, bot_username: str | None = None
) -> Command:
    """Never raises; without `bot_username` a reply to any bot counts as one to us."""
    if not isinstance(update, dict) or update_id_of(update) is None:
        return Ignore(MALFORMED)
    if "message" not in update:
        return Ignore(_reason_for_non_message(update))
    message = update["message"]
    context = _context(message)
    if context is None:
        return Ignore(MALFORMED)
    text = _text_of(message)
    if context.chat_id not in allowed_chat_ids:
        if message["chat"].get("type") == "private":
            return _private(text, message, context, bot_username)
        return Ignore(CHAT_NOT_ALLOWED)
    if text is None:
        return Ignore(MALFORMED)
    if not text.strip():
        return Ignore(NO_TEXT)
    return _command(text.strip(), message, context, bot_username)


def parse_press(update: object) -> ButtonPress | Ignore:
    """A button press; Ignore when it cannot even be answered (no query id). Never raises."""
    callback = update.get("callback_query") if isinstance(update, dict) else None
    if update_id_of(update) is None or not isinstance(callback, dict):
        return Ignore(MALFORMED)
    query_id, presser, message = callback.get("id"), callback.get("from"), callback.get("message")
    if not isinstance(query_id, str) or not query_id or not isinstance(presser, dict):
        return Ignore(MALFORMED)
    by = _by(presser)
    chat = message.get("chat") if isinstance(message, dict) else None
    # An inaccessible message (older than 48 hours) comes with date 0 and nothing else.
    chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
    message_id = _int(message.get("message_id")) if isinstance(message, dict) else None
    if by is None or chat_id is None or message_id is None:
        return Ignore(MALFORMED)
    topic = _int(message.get("message_thread_id")) if message.get("is_topic_message") is True else None
    context = Context(chat_id=chat_id, message_id=message_id, by=by, username=_username(presser),
                      sent_at=None, topic=topic)
    return ButtonPress(query_id, context, buttons.parse(callback.get("data")),
                       private=chat.get("type") == "private")


def sender_of(update: object) -> tuple[int, str | None] | None:
    """(user id, username or None) of the person who sent a message update; None for bots,
    channel posts and anything malformed."""
    if not isinstance(update, dict):
        return None
    message = update.get("message")
    sender = message.get("from") if isinstance(message, dict) else None
    if not isinstance(sender, dict) or sender.get("is_bot") is not False:
        return None
    user_id = _int(sender.get("id"))
    return None if user_id is None else (user_id, _username(sender))


def _private(text: str | None, message: dict[str, Any], context: Context,
             bot_username: str | None) -> Command:
    match = _SLASH.fullmatch((text or "").strip())
    user_id = _int(message["from"].get("id"))
    if match is None or match.group(1).lower() != "start" or user_id is None:
        return Ignore(PRIVATE_CHAT)
    addressee = match.group(2)
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return Ignore(OTHER_BOT)
    return StartPrivate(context, user_id)


def _reason_for_non_message(update: dict[str, Any]) -> str:
    if "edited_message" in update or "edited_channel_post" in update:
        return EDITED
    if "channel_post" in update:
        return CHANNEL_POST
    return UNSUPPORTED


def _context(message: object) -> Context | None:
    if not isinstance(message, dict):
        return None
    chat = message.get("chat")
    sender = message.get("from")
    if not isinstance(chat, dict) or not isinstance(sender, dict):
        return None
    chat_id = _int(chat.get("id"))
    message_id = _int(message.get("message_id"))
    by = _by(sender)
    if chat_id is None or message_id is None or by is None:
        return None
    # In a forum, the answer goes to the asker's topic (message_thread_id is also set on replies
    # outside forums, where sendMessage must not be given it).
    topic = _int(message.get("message_thread_id")) if message.get("is_topic_message") is True else None
    return Context(chat_id=chat_id, message_id=message_id, by=by, username=_username(sender),
                   sent_at=_int(message.get("date")), topic=topic)


def _by(sender: dict[str, Any]) -> str | None:
    if username := _username(sender):
        return f"telegram:{username}"
    user_id = _int(sender.get("id"))
    return None if user_id is None else f"telegram:{user_id}"


def _username(sender: dict[str, Any]) -> str | None:
    username = sender.get("username")
    return username.strip() if isinstance(username, str) and username.strip() else None


def _text_of(message: dict[str, Any]) -> str | None:
    """Text or caption; "" when neither, None when malformed."""
    for field in ("text", "caption"):
        if field in message:
            value = message[field]
            return value if isinstance(value, str) else None
    return ""


def _command(
    text: str, message: dict[str, Any], context: Context, bot_username: str | None
) -> Command:
    if text.startswith("/"):
        return _slash_command(text, context, bot_username)
    if text.startswith("["):
        return _tagged(text, context)
    if explicit := _EXPLICIT_ID.fullmatch(text):
        return _status_change(context, int(explicit.group(1)), explicit.group(2))
    if _STATUS.match(text) or _NOTE_WORD.match(text) or _replies_to_bot(message, bot_username):
        return _status_change_by_reply(text, message, context, bot_username)
    return Ignore(NOT_A_COMMAND)


def _slash_command(text: str, context: Context, bot_username: str | None) -> Command:
    match = _SLASH.fullmatch(text)
    if match is None:
        return Ignore(NOT_A_COMMAND)
    name, addressee, rest = match.group(1).lower(), match.group(2), match.group(3) or ""
    if addressee and bot_username and addressee.lower() != bot_username.lower():
        return Ignore(OTHER_BOT)
    if name == "open":
        return ListOpen(context)
    if name == "stats":
        return ShowStats(context)
    if name == "new":
        return _create(context, rest, Source.OPERATOR)
    if name == "mute":
        return _mute(context, rest)
    if name == "unmute":
        return Mute(context, 0)
    if name == "oncall":
        return ShowOnCall(context)
    if name == "override":
        return _override(context, rest)
    return Ignore(NOT_A_COMMAND)


def _override(context: Context, rest: str) -> Command:
    given = " ".join(rest.split())
    match = _OVERRIDE_DURATION.fullmatch(given)
    if match is None:
        return TakeOnCall(context, None, given)
    return TakeOnCall(context, int(match.group(1)) * _DURATION_MINUTES[match.group(2).lower()], given)


def _mute(context: Context, rest: str) -> Command:
    match = _DURATION.fullmatch(rest.strip() or "1h")
    if match is None:
        return Ignore(BAD_DURATION)
    minutes = int(match.group(1)) * _DURATION_MINUTES[(match.group(2) or "h").lower()]
    if minutes < 1:
        return Ignore(BAD_DURATION)
    return Mute(context, min(minutes, MAX_MUTE_MINUTES))


def _tagged(text: str, context: Context) -> Command:
    match = _TAG.fullmatch(text)
    source = _TAG_SOURCES.get(match.group(1).lower()) if match else None
    if match is None or source is None:
        return Ignore(NOT_A_COMMAND)
    return _create(context, match.group(2), source)


def _create(context: Context, description: str, source: Source) -> Command:
    description = description.strip().removeprefix(":").strip()
    if not description:
        return Ignore(EMPTY_DESCRIPTION)
    return CreateIncident(context, _clip(description, MAX_DESCRIPTION), source.value)


def _status_change(context: Context, incident_id: int, rest: str, *,
                   any_text_is_note: bool = False) -> Command:
    match = _STATUS.match(rest)
    if incident_id >= 1 and match is None and (any_text_is_note or _NOTE_WORD.match(rest)):
        return _note(context, incident_id, rest)
    if incident_id < 1 or match is None:
        return Ignore(NOT_A_COMMAND)
    status = _STATUS_WORDS[" ".join(match.group(1).lower().split())]
    note = match.group(2).lstrip(_NOTE_PUNCTUATION).strip()
    return ChangeStatus(context, incident_id, status.value, _clip(note, MAX_NOTE) or None)


def _status_change_by_reply(
    text: str, message: dict[str, Any], context: Context, bot_username: str | None
) -> Command:
    replied = message.get("reply_to_message")
    if not isinstance(replied, dict):
        return Ignore(NOT_A_COMMAND)
    if not _sent_by_bot(replied, bot_username):
        return Ignore(REPLY_NOT_TO_BOT)
    ids = {int(found) for found in _BOT_LINE_ID.findall(_text_of(replied) or "")}
    if len(ids) != 1:
        return Ignore(NO_INCIDENT_IN_REPLY)
    return _status_change(context, ids.pop(), text, any_text_is_note=True)


def _note(context: Context, incident_id: int, text: str) -> Command:
    if word := _NOTE_WORD.match(text):
        text = word.group(1)
    note = text.lstrip(_NOTE_PUNCTUATION).strip()
    if not note:
        return Ignore(EMPTY_NOTE)
    return AddNote(context, incident_id, _clip(note, MAX_NOTE))


def _replies_to_bot(message: dict[str, Any], bot_username: str | None) -> bool:
    replied = message.get("reply_to_message")
    return isinstance(replied, dict) and _sent_by_bot(replied, bot_username)


def _sent_by_bot(message: dict[str, Any], bot_username: str | None) -> bool:
    sender = message.get("from")
    if not isinstance(sender, dict) or sender.get("is_bot") is not True:
        return False
    if bot_username is None:
        return True
    username = sender.get("username")
    return isinstance(username, str) and username.lower() == bot_username.lower()


def parse_allowed_chats(value: str) -> frozenset[int]:
    ids = set()
    for piece in value.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if not _CHAT_ID.fullmatch(piece):
            raise ValueError(
                f"not a Telegram chat id: {piece!r}; "
                "expected integers separated by commas, e.g. -1001234567890"
            )
        ids.add(int(piece))
    return frozenset(ids)


def reply(context: Context, text: str, keyboard: dict[str, Any] | None = None) -> dict[str, Any]:
    """A sendMessage call, sent back as the webhook's response body; `keyboard`: its buttons."""
    answer: dict[str, Any] = {
        "method": "sendMessage",
        "chat_id": context.chat_id,
        "reply_to_message_id": context.message_id,
        "text": _clip(text, MAX_MESSAGE),
    }
    if context.topic is not None:
        answer["message_thread_id"] = context.topic
    if keyboard is not None:
        answer["reply_markup"] = keyboard
    return answer


def press_answer(query_id: str, text: str) -> dict[str, Any]:
    """An answerCallbackQuery call, sent back as the webhook's response body."""
    return {"method": "answerCallbackQuery", "callback_query_id": query_id,
            "text": _clip(text, MAX_PRESS_ANSWER)}


def incident_line(incident: dict[str, Any]) -> str:
    """What a pressed message shows afterwards: `#17 [monitoring, critical] in_progress, team
    ops, assignee @ivan_ops: Касса #7 не отвечает` (one line, see _BOT_LINE_ID)."""
    team = f", team {incident['team']}" if incident.get("team") else ""
    assignee = f", assignee @{incident['assignee']}" if incident.get("assignee") else ""
    return (f"#{incident['id']} [{_tags(incident.get('source'), incident.get('severity'))}] "
            f"{incident['status']}{team}{assignee}: {_preview(incident['description'], LINE_PREVIEW)}")


def already_text(incident: dict[str, Any]) -> str:
    assignee = f", assignee @{incident['assignee']}" if incident.get("assignee") else ""
    return f"#{incident['id']} is already {incident['status']}{assignee}"


def moved_on_text(incident: dict[str, Any]) -> str:
    return f"#{incident['id']} is {incident['status']} now"


def unknown_button_text() -> str:
    return "This button is no longer supported: reply to the message with the command instead."


def press_not_served_text(private: bool) -> str:
    if private:
        return "Buttons work in the incident groups only, not in a private chat."
    return "This chat is not served: buttons work in the incident groups only."


def cannot_reopen_text(incident_id: int, holder: int) -> str:
    return f"#{incident_id} cannot be reopened: #{holder} is open for the same alert"


def created_text(incident: dict[str, Any]) -> str:
    preview = _preview(incident["description"], CREATED_PREVIEW)
    severity = f" [{incident['severity']}]" if incident.get("severity") else ""
    return f"Incident #{incident['id']} created{severity}: {preview}"


def status_changed_text(incident: dict[str, Any]) -> str:
    assignee = f", assignee @{incident['assignee']}" if incident.get("assignee") else ""
    return f"#{incident['id']} → {incident['status']}{assignee}"


def username_of(by: str) -> str | None:
    """`telegram:<username>` -> the username; None for `telegram:<numeric id>`."""
    name = by.removeprefix("telegram:")
    return None if name.isdigit() else name


def note_added_text(incident: dict[str, Any]) -> str:
    return f"#{incident['id']}: note added ({incident['status']})"


def not_found_text(incident_id: int) -> str:
    return f"Incident #{incident_id} not found"


def transition_refused_text(incident_id: int, current: str, allowed: list[str]) -> str:
    return f"#{incident_id} is {current}; allowed: {', '.join(allowed) or 'none'}"


def muted_text(until: str) -> str:
    return (f"Reminders and the daily digest are muted until {until[:16].replace('T', ' ')} UTC. "
            "New incidents are still announced.")


def unmuted_text() -> str:
    return "Reminders and the daily digest are back on."


def started_text(username: str) -> str:
    return (f"Hello, {username}! When a team pages @{username}, you will get a direct message "
            "here as well as the mention in the team's chat.")


def username_needed_text(what: str) -> str:
    return (f"You have no Telegram username, and {what}. Set one in Telegram's settings "
            "(Settings → Username), then send the command again.")


def no_team_text() -> str:
    return ("This chat is no team's chat: /oncall and /override work in the group a team "
            "names as its chat_id (PUT /teams/{name}).")


def bad_override_text(given: str, max_days: int) -> str:
    shown = f" (got {_preview(given, 40)!r})" if given else ""
    return (f"Not accepted: /override takes how long you go on call from now, such as 30m, 4h or 1d: "
            f"a whole number of minutes (m), hours (h) or days (d), from 1 minute to {max_days} "
            f"days{shown}")


def oncall_text(team: str, user: str, override: bool, until: datetime, next_user: str,
                time_zone: str) -> str:
    how = " (override)" if override else ""
    if next_user == user:
        return f"On call for {team}: {user}{how}, with nobody else in the rotation."
    return (f"On call for {team}: {user}{how} until {local_and_utc(until, time_zone)}, "
            f"then {next_user}.")


def override_text(team: str, user: str, end: datetime, time_zone: str) -> str:
    return f"{user} is on call for {team} until {local_and_utc(end, time_zone)}."


def local_and_utc(moment: datetime, time_zone: str) -> str:
    """`2026-12-09 10:00 Europe/Moscow (2026-12-09 07:00 UTC)`: the team reads its own clock."""
    local = moment.astimezone(ZoneInfo(time_zone)).strftime("%Y-%m-%d %H:%M")
    return f"{local} {time_zone} ({moment.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC)"


def not_accepted_text(reason: str) -> str:
    return f"Not accepted: {reason}"


def open_list_text(incidents: list[dict[str, Any]]) -> str:
    if not incidents:
        return "No open incidents"
    return "\n".join(
        f"#{i['id']} [{_tags(i['status'], i.get('severity'))}] {_preview(i['description'], LIST_PREVIEW)}"
        for i in incidents[:OPEN_LIST_LIMIT]
    )


def _tags(*tags: str | None) -> str:
    return ", ".join(tag for tag in tags if tag)


def _preview(text: str, limit: int) -> str:
    # One line: see _BOT_LINE_ID.
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _int(value: object) -> int | None:
    # bool is an int subclass; `true` is not an id.
    return value if isinstance(value, int) and not isinstance(value, bool) else None
