"""Telegram webhook: one update -> at most one service call -> the response body ({}: silent).

Unavailable propagates: a 5xx makes Telegram redeliver. Why and how: docs/telegram.md.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from datetime import datetime, timedelta, timezone

from chalicelib import buttons, logs, notifier, services, stats, telegram, telegram_client
from chalicelib.incidents import (DedupKeyHeld, IdempotencyKeyReused, IncidentNotFound, InvalidInput, Status,
                                  TransitionNotAllowed)
from chalicelib.oncall import chats, people, teams
from chalicelib.payloads import check_json_limits
from chalicelib.secrets import SecretUnavailable
from chalicelib.store import Store

logger = logging.getLogger(__name__)

NOTHING: dict[str, Any] = {}
NOT_JSON = "body is not JSON"
# user id -> the username last checked against their link, per store: a user's next message
# reads the link only when their username differs from what this container last saw.
_seen_usernames: WeakKeyDictionary[Store, dict[int, str | None]] = WeakKeyDictionary()
MAX_SEEN_USERS = 10_000


class Editor(Protocol):
    def edit_message_text(self, chat_id: int | str, message_id: int, text: str,
                          buttons: dict[str, Any] | None) -> None: ...


# A failed edit leaves the old message showing; the press itself is stored and answered.
EDIT_FAILURES = (telegram_client.SendFailed, telegram_client.BotTokenUnavailable, SecretUnavailable)


@dataclass(frozen=True)
class Settings:
    allowed_chats: frozenset[int]
    bot_username: str | None

    @classmethod
    def from_environment(cls) -> "Settings":
        """A malformed chat list raises ValueError rather than silently serving no chat."""
        username = os.environ.get("TELEGRAM_BOT_USERNAME", "").strip().lstrip("@")
        return cls(
            allowed_chats=telegram.parse_allowed_chats(os.environ.get("TELEGRAM_ALLOWED_CHATS", "")),
            bot_username=username or None,
        )


def handle_body(store: Store, raw: bytes | None, settings: Settings,
                now: datetime | None = None, editor: Editor | None = None) -> dict[str, Any]:
    """Unreadable bodies get {}: an error status would only make Telegram redeliver them."""
    try:
        text = (raw or b"").decode("utf-8")
        check_json_limits(text, "update")
        update = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, InvalidInput) as error:
        logger.warning(
            "telegram update ignored",
            extra={"reason": NOT_JSON, "error": str(error)[:200], "body_bytes": len(raw or b"")},
        )
        logs.annotate(outcome="malformed", reason=NOT_JSON)
        return NOTHING
    return handle_update(store, update, settings, now, editor)


def handle_update(store: Store, update: object, settings: Settings,
                  now: datetime | None = None, editor: Editor | None = None) -> dict[str, Any]:
    """`now`: the clock at the edge; /oncall and /override use the message's own `date`.
    `editor`: what edits a pressed button's message (by default the Bot API, token read lazily)."""
    now = now or datetime.now(timezone.utc)
    chat_id = telegram.chat_id_of(update)
    team = chats.team_of_chat(store, chat_id)
    served = settings.allowed_chats | {chat_id} if team is not None else settings.allowed_chats
    if isinstance(update, dict) and "callback_query" in update:
        return _press(store, update, served, editor or telegram_client.Lazy())
    command = telegram.parse_update(update, served, bot_username=settings.bot_username)
    update_id = telegram.update_id_of(update)
    logs.annotate(update_id=update_id, chat_id=chat_id)
    if team is not None:
        logs.annotate(team=team["sk"])
    if not isinstance(command, telegram.StartPrivate) and (sender := telegram.sender_of(update)):
        _follow_username(store, *sender, now)
    if isinstance(command, telegram.Ignore):
        level = logging.WARNING if command.reason == telegram.MALFORMED else logging.INFO
        logger.log(level, "telegram update ignored",
                   extra={"reason": command.reason, "update_id": update_id,
                          "chat_id": telegram.chat_id_of(update)})
        logs.annotate(outcome="malformed" if command.reason == telegram.MALFORMED else "ignored",
                      reason=command.reason)
        return NOTHING
    # Kind as fingerprint: an update_id never replays as another kind of command.
    once = services.OnceKey(f"telegram#{update_id}", type(command).__name__)
    try:
        text, incident = _run(store, command, once, team, now)
    except IdempotencyKeyReused:
        return _reused(update_id)
    logger.info("telegram command handled",
                extra={"command": type(command).__name__, "update_id": update_id,
                       "chat_id": command.context.chat_id, "by": command.context.by})
    logs.annotate(command=type(command).__name__, by=command.context.by)
    logs.annotate_outcome("handled")
    return telegram.reply(command.context, text, buttons.keyboard(incident) if incident else None)


def _run(store: Store, command: telegram.Command, once: services.OnceKey,
         team: dict[str, Any] | None, now: datetime) -> tuple[str, dict[str, Any] | None]:
    """The reply, and the incident it is about (None: about no single one), whose buttons go with it."""
    by = command.context.by
    try:
        match command:
            case telegram.CreateIncident(description=description, source=source):
                created = services.open_incident(
                    store, description=description, source=source, by=by, once=once,
                    team=team["sk"] if team else None,
                )
                return telegram.created_text(created.incident), created.incident
            case telegram.StartPrivate(context=context, user_id=user_id):
                return _start(store, context, user_id, now), None
            case telegram.ShowOnCall(context=context):
                return _show_on_call(store, team, _sent_at(context, now)), None
            case telegram.TakeOnCall(context=context, minutes=minutes, given=given):
                return _take_on_call(store, team, context, minutes, given, _sent_at(context, now), once), None
            case telegram.ChangeStatus(incident_id=incident_id, status=status, note=note):
                # Whoever takes it is its assignee (a sender without a username: unchanged).
                taker = telegram.username_of(by) if status == Status.IN_PROGRESS else None
                incident = services.change_status(
                    store, incident_id, status, by=by, note=note, once=once, assignee=taker
                )
                return telegram.status_changed_text(incident), incident
            case telegram.AddNote(incident_id=incident_id, note=note):
                incident = services.add_note(store, incident_id, note, by=by, once=once)
                return telegram.note_added_text(incident), incident
            case telegram.ShowStats():
                since = stats.utc_now() - stats.DEFAULT_WINDOW
                return stats.telegram_text(services.incident_stats(store, since)), None
            case telegram.ListOpen():
                return telegram.open_list_text(
                    services.list_open(store, telegram.OPEN_LIST_LIMIT)
                ), None
            case telegram.Mute(context=context, minutes=0):
                notifier.unmute(store, context.chat_id)
                return telegram.unmuted_text(), None
            case telegram.Mute(context=context, minutes=minutes):
                until = datetime.now(timezone.utc) + timedelta(minutes=minutes)
                notifier.mute(store, context.chat_id, until)
                return telegram.muted_text(until.isoformat()), None
    except IncidentNotFound as error:
        logs.annotate(outcome="refused", incident_id=error.incident_id, reason="not found")
        return telegram.not_found_text(error.incident_id), None
    except TransitionNotAllowed as error:
        logs.annotate(outcome="refused", incident_id=error.incident_id, reason="transition not allowed")
        return (telegram.transition_refused_text(error.incident_id, error.current, error.allowed),
                {"id": error.incident_id, "status": error.current})
    except DedupKeyHeld as held:  # a reopen while another incident is open for the same alert
        logs.annotate(outcome="refused", incident_id=held.incident_id, reason="dedup_key held")
        return telegram.cannot_reopen_text(held.incident_id, held.holder), held.incident
    except InvalidInput as error:
        logs.annotate(outcome="refused", reason="invalid input")
        return telegram.not_accepted_text(str(error)), None
    except teams.OnCallLimit as error:
        logs.annotate(outcome="refused", reason="on-call limit")
        return telegram.not_accepted_text(str(error)), None
    except teams.TeamNotFound:  # deleted since this container read the teams
        logs.annotate(outcome="refused", reason="no team")
        return telegram.no_team_text(), None
    raise TypeError(f"not a command: {command!r}")


def _press(store: Store, update: dict[str, Any], served: frozenset[int], editor: Editor) -> dict[str, Any]:
    """A button press: the same change as the typed command, but only from the status the message
    showed; answered (answerCallbackQuery) in the response, the message edited to match."""
    update_id = telegram.update_id_of(update)
    logs.annotate(update_id=update_id, chat_id=telegram.chat_id_of(update))
    pressed = telegram.parse_press(update)
    if isinstance(pressed, telegram.Ignore):  # without a query id there is nothing to answer
        logger.warning("telegram update ignored", extra={"reason": pressed.reason, "update_id": update_id})
        logs.annotate(outcome="malformed", reason=pressed.reason)
        return NOTHING
    context, press = pressed.context, pressed.press
    logs.annotate(command="ButtonPress", by=context.by)
    refused = None
    if context.chat_id not in served:
        refused = telegram.PRIVATE_CHAT if pressed.private else telegram.CHAT_NOT_ALLOWED
        text = telegram.press_not_served_text(pressed.private)
    elif press is None or press.action not in buttons.actions_for(press.shown):
        refused, text = telegram.UNKNOWN_BUTTON, telegram.unknown_button_text()
    if refused is not None:
        logger.info("telegram button press refused",
                    extra={"reason": refused, "update_id": update_id, "chat_id": context.chat_id,
                           "by": context.by})
        logs.annotate(outcome="refused", reason=refused)
        return telegram.press_answer(pressed.query_id, text)
    assert press is not None
    # The kind as fingerprint, as for typed commands: an update_id never replays as another kind.
    once = services.OnceKey(f"telegram#{update_id}", "ButtonPress")
    try:
        text, incident = _apply_press(store, press, context.by, once)
    except IdempotencyKeyReused:
        return _reused(update_id)
    logger.info("telegram button pressed",
                extra={"action": press.action.name, "incident_id": press.incident_id,
                       "shown": str(press.shown), "update_id": update_id,
                       "chat_id": context.chat_id, "by": context.by})
    logs.annotate(incident_id=press.incident_id, action=press.action.name)
    logs.annotate_outcome("handled")
    if incident is not None:
        _show(editor, context, incident)
    return telegram.press_answer(pressed.query_id, text)


def _apply_press(store: Store, press: buttons.Press, by: str,
                 once: services.OnceKey) -> tuple[str, dict[str, Any] | None]:
    """The answer, and the incident as the pressed message should now show it."""
    target = press.action.target
    taker = telegram.username_of(by) if target == Status.IN_PROGRESS else None
    try:
        change = services.change_status_from(store, press.incident_id, target, shown=press.shown, by=by,
                                             once=once, assignee=taker)
    except IncidentNotFound:
        logs.annotate(outcome="refused", reason="not found")
        return telegram.not_found_text(press.incident_id), None
    except TransitionNotAllowed:  # stale: the incident has moved on from what the message showed
        logs.annotate(outcome="refused", reason="stale button")
        incident = services.get_incident(store, press.incident_id)
        return telegram.moved_on_text(incident), incident
    except DedupKeyHeld as held:
        logs.annotate(outcome="refused", reason="dedup_key held")
        return (telegram.cannot_reopen_text(press.incident_id, held.holder),
                services.get_incident(store, press.incident_id))
    if not change.applied:
        logs.annotate(reason="already so")
        return telegram.already_text(change.incident), change.incident
    return telegram.status_changed_text(change.incident), change.incident


def _show(editor: Editor, context: telegram.Context, incident: dict[str, Any]) -> None:
    try:
        editor.edit_message_text(context.chat_id, context.message_id, telegram.incident_line(incident),
                                 buttons.keyboard(incident))
    except EDIT_FAILURES as failed:
        logger.warning("telegram message not edited",
                       extra={"chat_id": context.chat_id, "message_id": context.message_id,
                              "incident_id": incident["id"], "error": str(failed)[:200]})
        logs.annotate(edit="failed")


def _start(store: Store, context: telegram.Context, user_id: int, now: datetime) -> str:
    if context.username is None:
        people.unlink(store, user_id)
        _seen(store)[user_id] = None
        return telegram.username_needed_text("teams page people by their username")
    people.link(store, context.username, user_id, context.chat_id, now)
    _seen(store)[user_id] = context.username
    return telegram.started_text(context.username)


def _show_on_call(store: Store, team: dict[str, Any] | None, at: datetime) -> str:
    if team is None:
        return telegram.no_team_text()
    answer = teams.who_is_on_call(store, team["sk"], at)
    return telegram.oncall_text(answer["team"], answer["user"], answer["override"],
                                teams.parse_iso(answer["until"]), answer["next"], team["time_zone"])


def _take_on_call(store: Store, team: dict[str, Any] | None, context: telegram.Context,
                  minutes: int | None, given: str, at: datetime, once: services.OnceKey) -> str:
    if team is None:
        return telegram.no_team_text()
    if context.username is None:
        return telegram.username_needed_text("an override puts a username on call")
    if minutes is None or not 1 <= minutes <= teams.MAX_OVERRIDE.total_seconds() // 60:
        return telegram.bad_override_text(given, teams.MAX_OVERRIDE.days)
    # The same use case as POST /teams/{name}/overrides, with the same rules.
    end = at + timedelta(minutes=minutes)
    # Its id from the update's: Telegram delivering the update again finds this override.
    override = teams.add_override(
        store, team["sk"], {"user": context.username, "start": teams.iso(at), "end": teams.iso(end)}, at,
        override_id=hashlib.sha256(once.key.encode()).hexdigest()[:16])
    return telegram.override_text(team["sk"], override["user"], teams.parse_iso(override["end"]),
                                  team["time_zone"])


def _sent_at(context: telegram.Context, now: datetime) -> datetime:
    """The message's date: a delivery retried later acts for the moment it was asked."""
    if context.sent_at is None:
        return now
    return datetime.fromtimestamp(context.sent_at, timezone.utc)


def _follow_username(store: Store, user_id: int, username: str | None, now: datetime) -> None:
    """A user who started the bot and has changed their username since: move the link. One
    GetItem the first time this container sees a user and whenever their username changes."""
    seen = _seen(store)
    if user_id in seen and seen[user_id] == username:
        return
    linked = people.linked_user(store, user_id)
    if linked is not None and linked["username"] != username:
        if username is None:
            people.unlink(store, user_id)
        else:
            people.link(store, username, user_id, linked["chat_id"], now)
        logger.info("telegram username followed", extra={"user_id": user_id, "username": username})
    seen[user_id] = username


def _seen(store: Store) -> dict[int, str | None]:
    seen = _seen_usernames.setdefault(store, {})
    if len(seen) >= MAX_SEEN_USERS:
        seen.clear()
    return seen


def _reused(update_id: int | None) -> dict[str, Any]:
    """An update_id seen before as another kind of update: not Telegram's redelivery, ignored."""
    logger.warning("telegram update ignored",
                   extra={"reason": "update_id reused for another command", "update_id": update_id})
    logs.annotate(outcome="ignored", reason="update_id reused")
    return NOTHING


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
