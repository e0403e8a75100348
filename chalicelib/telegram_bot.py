"""Telegram webhook: one update -> at most one service call -> the response body ({}: silent).

Unavailable propagates: a 5xx makes Telegram redeliver. Why and how: docs/telegram.md.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from datetime import datetime, timedelta, timezone

from chalicelib import logs, notifier, services, stats, telegram
from chalicelib.incidents import Status, IdempotencyKeyReused, IncidentNotFound, InvalidInput, TransitionNotAllowed
from chalicelib.payloads import check_json_limits
from chalicelib.store import Store

logger = logging.getLogger(__name__)

NOTHING: dict[str, Any] = {}
NOT_JSON = "body is not JSON"


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


def handle_body(store: Store, raw: bytes | None, settings: Settings) -> dict[str, Any]:
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
    return handle_update(store, update, settings)


def handle_update(store: Store, update: object, settings: Settings) -> dict[str, Any]:
    command = telegram.parse_update(
        update, settings.allowed_chats, bot_username=settings.bot_username
    )
    update_id = telegram.update_id_of(update)
    logs.annotate(update_id=update_id, chat_id=telegram.chat_id_of(update))
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
        text = _run(store, command, once)
    except IdempotencyKeyReused:
        logger.warning("telegram update ignored",
                       extra={"reason": "update_id reused for another command", "update_id": update_id})
        logs.annotate(outcome="ignored", reason="update_id reused")
        return NOTHING
    logger.info("telegram command handled",
                extra={"command": type(command).__name__, "update_id": update_id,
                       "chat_id": command.context.chat_id, "by": command.context.by})
    logs.annotate(command=type(command).__name__, by=command.context.by)
    logs.annotate_outcome("handled")
    return telegram.reply(command.context, text)


def _run(store: Store, command: telegram.Command, once: services.OnceKey) -> str:
    by = command.context.by
    try:
        match command:
            case telegram.CreateIncident(description=description, source=source):
                created = services.open_incident(
                    store, description=description, source=source, by=by, once=once
                )
                return telegram.created_text(created.incident)
            case telegram.ChangeStatus(incident_id=incident_id, status=status, note=note):
                # Whoever takes it is its assignee (a sender without a username: unchanged).
                taker = telegram.username_of(by) if status == Status.IN_PROGRESS else None
                incident = services.change_status(
                    store, incident_id, status, by=by, note=note, once=once, assignee=taker
                )
                return telegram.status_changed_text(incident)
            case telegram.AddNote(incident_id=incident_id, note=note):
                incident = services.add_note(store, incident_id, note, by=by, once=once)
                return telegram.note_added_text(incident)
            case telegram.ShowStats():
                since = stats.utc_now() - stats.DEFAULT_WINDOW
                return stats.telegram_text(services.incident_stats(store, since))
            case telegram.ListOpen():
                return telegram.open_list_text(
                    services.list_open(store, telegram.OPEN_LIST_LIMIT)
                )
            case telegram.Mute(context=context, minutes=0):
                notifier.unmute(store, context.chat_id)
                return telegram.unmuted_text()
            case telegram.Mute(context=context, minutes=minutes):
                until = datetime.now(timezone.utc) + timedelta(minutes=minutes)
                notifier.mute(store, context.chat_id, until)
                return telegram.muted_text(until.isoformat())
    except IncidentNotFound as error:
        logs.annotate(outcome="refused", incident_id=error.incident_id, reason="not found")
        return telegram.not_found_text(error.incident_id)
    except TransitionNotAllowed as error:
        logs.annotate(outcome="refused", incident_id=error.incident_id, reason="transition not allowed")
        return telegram.transition_refused_text(error.incident_id, error.current, error.allowed)
    except InvalidInput as error:
        logs.annotate(outcome="refused", reason="invalid input")
        return telegram.not_accepted_text(str(error))
    raise TypeError(f"not a command: {command!r}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
