"""The inline buttons under the notices about one incident (the stream's, reminders, escalation
steps), built from the incident's status when the notice is sent; none under a folded message,
the digest, a direct message, or a notice about a closed incident. Against the fake Bot API,
which refuses callback_data over Telegram's 64 bytes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib import notifier, services, telegram_client
from chalicelib.oncall import people
from tests.fake_bot_api import FakeBotApi
from tests.oncall.test_escalation import IVAN_PRIVATE, TEAM_CHAT, TOPIC, at, escalate, open_for, team  # noqa: F401
from tests.test_notifications import (  # noqa: F401 (fixtures)
    ALARM_SNS,
    CHAT,
    TOKEN,
    bot,
    deliver_new,
    sns_alarm,
    stream,
)


def labels(message: dict[str, Any]) -> list[str]:
    """The buttons under a sent message, as the group sees them; [] for none."""
    markup = message.get("reply_markup") or {}
    return [button["text"] for row in markup.get("inline_keyboard") or [] for button in row]


def data(message: dict[str, Any]) -> list[str]:
    return [button["callback_data"] for row in message["reply_markup"]["inline_keyboard"] for button in row]


@pytest.fixture(autouse=True)
def nothing_refused(bot: FakeBotApi) -> Any:
    yield
    assert bot.refused == []


def sender(bot: FakeBotApi) -> telegram_client.BotApi:
    return telegram_client.BotApi(TOKEN, bot.url)


# The stream's notices

def test_an_opened_incidents_notice_offers_take_and_resolve(api, client, bot, stream):
    api.create("Касса #7 не отвечает", "partner")
    deliver_new(client, stream)

    [message] = bot.messages
    assert labels(message) == ["Take", "Resolve"]
    assert data(message) == ["take:1:new", "resolve:1:new"]


def test_a_change_to_in_progress_offers_resolve_and_close(api, client, bot, stream):
    api.create()
    deliver_new(client, stream)
    api.patch("/incidents/1", {"status": "in_progress"})
    deliver_new(client, stream)

    taken = bot.messages[1]
    assert taken["text"] == "#1 → in_progress by api"
    assert labels(taken) == ["Resolve", "Close"]
    assert data(taken) == ["resolve:1:in_progress", "close:1:in_progress"]


def test_an_incident_resolved_by_its_alarm_offers_reopen_and_close(client, bot, stream):
    client.lambda_.invoke(ALARM_SNS, sns_alarm("pos-7-down"))
    deliver_new(client, stream)
    client.lambda_.invoke(ALARM_SNS, sns_alarm("pos-7-down", "OK", "2026-11-23T10:42:05.337+0000"))
    deliver_new(client, stream)

    opened, recovered = bot.messages
    assert labels(opened) == ["Take", "Resolve"]
    assert recovered["text"] == "#1 resolved: alarm recovered"
    assert labels(recovered) == ["Reopen", "Close"]
    assert data(recovered) == ["reopen:1:resolved", "close:1:resolved"]


def test_a_notice_about_a_closed_incident_has_no_buttons(api, client, bot, stream):
    api.create()
    deliver_new(client, stream)
    api.patch("/incidents/1", {"status": "closed", "note": "дубль"})
    deliver_new(client, stream)

    closed = bot.messages[1]
    assert closed["text"] == "#1 → closed by api: дубль"
    assert "reply_markup" not in closed


def test_a_note_carries_the_buttons_of_the_incidents_status(api, client, bot, stream):
    api.create()
    api.patch("/incidents/1", {"status": "in_progress"})
    deliver_new(client, stream)
    assert api.post("/incidents/1/notes", {"note": "ждём запчасть"}).status_code == 201
    deliver_new(client, stream)

    note = bot.messages[-1]
    assert note["text"] == "#1 note by api: ждём запчасть"
    assert labels(note) == ["Resolve", "Close"]


def test_an_assignment_made_outside_the_group_carries_the_buttons_of_the_incidents_status(
        api, client, bot, stream):
    api.create()
    deliver_new(client, stream)
    assert api.patch("/incidents/1", {"assignee": "ivan_ops"}).status_code == 200
    deliver_new(client, stream)

    assigned = bot.messages[1]
    assert assigned["text"].startswith("#1 assignee → @ivan_ops")
    assert data(assigned) == ["take:1:new", "resolve:1:new"]


def test_the_local_run_prints_a_notices_buttons_after_its_text(api, client, bot, stream, monkeypatch, capsys):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    monkeypatch.setenv("NOTIFY_TO_CONSOLE", "1")  # what scripts/local_stream.py sets
    api.create("Касса #7 не отвечает", "partner")
    deliver_new(client, stream)

    assert f"[telegram → {CHAT}] #1 [partner] new: Касса #7 не отвечает  [Take] [Resolve]\n" in capsys.readouterr().out


def test_a_late_notice_carries_the_buttons_of_the_status_the_incident_has_when_it_is_sent(
        api, client, bot, stream):
    api.create()
    api.patch("/incidents/1", {"status": "resolved"})
    deliver_new(client, stream)  # the opening is told only now, after the incident was resolved

    opened, resolved = bot.messages
    assert opened["text"].startswith("#1 [operator] new:")
    # not Take: a press on it would ask for a transition the incident no longer allows
    assert data(opened) == ["reopen:1:resolved", "close:1:resolved"]
    assert data(resolved) == ["reopen:1:resolved", "close:1:resolved"]


def test_a_folded_burst_has_no_buttons(api, client, bot, stream):
    for n in range(5):
        api.create(f"Самокат {n} не в сети", "partner")
    deliver_new(client, stream)

    [folded] = bot.messages
    assert len(folded["text"].split("\n")) == 5
    assert "reply_markup" not in folded


# The schedules

def test_a_reminder_offers_take_and_resolve(store, bot):
    opened = services.open_incident(store, description="Касса #7 не отвечает", source="partner", by="api").incident
    notifier.send_reminders(store, sender(bot), notifier.Settings(chat_id=CHAT), at(opened["created_at"], minutes=16))

    [reminder] = bot.messages
    assert reminder["text"] == "#1 has waited 16 min in new"
    assert data(reminder) == ["take:1:new", "resolve:1:new"]


def test_the_digest_has_no_buttons(store, bot):
    services.open_incident(store, description="report", source="partner", by="api")
    notifier.send_digest(store, sender(bot), notifier.Settings(chat_id=CHAT),
                         datetime.now(timezone.utc) + timedelta(hours=1))

    [digest] = bot.messages
    assert digest["text"].startswith("#1 ")
    assert "reply_markup" not in digest


# A team's chat and topic; direct messages

def test_a_teams_notice_goes_to_its_chat_and_topic_with_its_buttons(client, store, stream, team, bot):
    open_for(store)
    deliver_new(client, stream)

    [message] = bot.messages
    assert (message["chat_id"], message["message_thread_id"]) == (str(TEAM_CHAT), TOPIC)
    assert data(message) == ["take:1:new", "resolve:1:new"]


def test_an_escalation_step_carries_buttons_in_the_teams_chat_and_none_in_the_direct_message(
        client, store, team, bot):
    people.link(store, "maria_sre", 222222222, 222222222, datetime.now(timezone.utc))
    opened = open_for(store)
    escalate(client, at(opened["created_at"], minutes=5, seconds=1))

    step, direct = bot.messages
    assert step["text"].startswith("#1 still new, escalation rule 2 of 2: @maria_sre")
    assert (step["chat_id"], step["message_thread_id"]) == (str(TEAM_CHAT), TOPIC)
    assert data(step) == ["take:1:new", "resolve:1:new"]
    # a press counts only from an allowed chat: the buttons are on the team chat's message
    assert (direct["chat_id"], direct["text"]) == ("222222222", step["text"])
    assert "reply_markup" not in direct


def test_the_opening_sent_to_the_paged_person_directly_has_no_buttons(client, store, stream, team, bot):
    people.link(store, "ivan_ops", IVAN_PRIVATE, IVAN_PRIVATE, datetime.now(timezone.utc))
    open_for(store)
    deliver_new(client, stream)

    group, direct = bot.messages
    assert labels(group) == ["Take", "Resolve"]
    assert direct["chat_id"] == str(IVAN_PRIVATE) and "reply_markup" not in direct
