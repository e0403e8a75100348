"""Telegram: notes (`#17 note …`, `#17 заметка …`, any reply to the bot's message about #17)
and `/stats`, through the webhook."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib import services
from chalicelib.telegram import AddNote, Ignore, ShowStats, parse_update
from tests.conftest import load_payload
from tests.test_stats import clock, data_set  # noqa: F401 (fixtures)
from tests.test_telegram_webhook import GROUP, incident, said, seed, send, telegram_settings, update  # noqa: F401 (autouse)

ALLOWED = frozenset({GROUP})


def parse(text: str, payload: str = "new_operator") -> Any:
    message = load_payload(f"telegram/{payload}.json")
    message["message"]["text"] = text
    return parse_update(message, ALLOWED, bot_username="IncidentBot")


@pytest.mark.parametrize("text, note", [
    ("#17 note звонил в сервис", "звонил в сервис"),
    ("#17 заметка: ждём техника", "ждём техника"),
    ("#17 NOTE checked the logs", "checked the logs"),
    ("#17: Заметка, перезапустили", "перезапустили"),
])
def test_hash_id_note_or_zametka_is_a_note(text, note):
    command = parse(text)
    assert isinstance(command, AddNote)
    assert (command.incident_id, command.note) == (17, note)


@pytest.mark.parametrize("text, expected", [
    ("#17 note", Ignore("empty note")),
    ("#17 notebook found", Ignore("not a command")),
    ("note без номера", Ignore("not a command")),
    ("кто сегодня смотрит #3?", Ignore("not a command")),
])
def test_what_is_not_a_note(text, expected):
    assert parse(text) == expected


def test_a_note_word_replying_to_the_bot_is_dropped_from_the_note():
    command = parse("заметка: приехал техник", "reply_to_bot")
    assert command == AddNote(command.context, 17, "приехал техник")


def test_a_status_word_replying_to_the_bot_still_changes_the_status():
    assert type(parse("fixed rebooted", "reply_to_bot")).__name__ == "ChangeStatus"


def test_ordinary_talk_replying_to_a_human_is_still_ignored():
    update_ = load_payload("telegram/reply_to_human.json")
    update_["message"]["text"] = "спасибо!"
    assert parse_update(update_, ALLOWED, bot_username="IncidentBot") == Ignore("not a command")


@pytest.mark.parametrize("text", ["/stats", "/stats@IncidentBot", "/STATS"])
def test_stats_command(text):
    assert isinstance(parse(text), ShowStats)


def test_hash_id_note_adds_a_note_and_the_bot_confirms(client, api, store):
    seed(store, 17)
    services.change_status(store, 17, "closed", by="api")

    response = send(client, update("new_operator", "#17 заметка дубль #41, см. там"))

    assert said(response) == "#17: note added (closed)"
    shown = incident(api, 17)
    assert shown["status"] == "closed"
    assert shown["history"][-1] == {"at": shown["updated_at"], "status": "closed",
                                    "note": "дубль #41, см. там", "by": "telegram:ivan_ops"}


def test_a_reply_to_the_bots_message_about_17_adds_a_note_and_a_redelivery_adds_nothing(client, api, store):
    seed(store, 17)
    reply = update("reply_to_bot", "приехал техник, меняет модуль")

    first = said(send(client, reply))
    again = said(send(client, reply))

    assert first == again == "#17: note added (new)"
    shown = incident(api, 17)
    assert shown["history_count"] == 2
    assert shown["history"][-1]["note"] == "приехал техник, меняет модуль"


def test_a_note_on_an_unknown_incident_is_answered_not_found(client, store):
    assert said(send(client, update("new_operator", "#99 note hello"))) == "Incident #99 not found"


def test_stats_answers_the_last_seven_days_in_three_lines(client, data_set):
    text = said(send(client, update("new_operator", "/stats")))

    assert text.splitlines() == [
        "Open: 2 new, 3 in progress (operator 1, monitoring 2, partner 2)",
        "Last 7 days: 7 opened, 4 resolved",
        "Acknowledge: median 1m, p90 5m; resolve: median 7m, p90 30m",
    ]
