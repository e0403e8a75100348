"""Escalation: the scheduled `escalate` function, handed event times, against a fake Bot API."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib import services
from chalicelib.oncall import people
from scripts.local_stream import scheduled_event
from chalicelib.telegram_client import SendFailed
from tests.fake_bot_api import server_error
from tests.test_notifications import (  # noqa: F401 (fixtures)
    CHAT,
    TOKEN,
    bot,
    deliver_new,
    post_update,
    stream,
    telegram_update,
)

TEAM_CHAT = -1009876543210
TOPIC = 7
IVAN_PRIVATE = 111111111
TEAM = {
    "chat_id": TEAM_CHAT,
    "thread_id": TOPIC,
    "time_zone": "UTC",
    "rotation": {"members": ["ivan_ops"], "start": "2026-01-01T00:00", "shift": "weekly"},
    "escalation_rules": [
        {"escalation_delay_in_minutes": 5, "targets": ["on_call"]},
        {"escalation_delay_in_minutes": 10, "targets": ["@maria_sre"]},
    ],
    "num_loops": 0,
}


def put_team(api: Any, name: str = "ops", **changes: Any) -> None:
    response = api.request("PUT", f"/teams/{name}", json_body={**TEAM, **changes})
    assert response.status_code in (200, 201), response.body


def open_for(store: Any, team: str = "ops", description: str = "Касса #7 не отвечает") -> dict[str, Any]:
    return services.open_incident(store, description=description, source="partner", by="api",
                                  team=team).incident


def at(moment: str, **delta: float) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")) + timedelta(**delta)


def escalate(client: Any, moment: datetime) -> None:
    client.lambda_.invoke("escalate", scheduled_event(moment.isoformat(timespec="seconds")
                                                      .replace("+00:00", "Z")))


def incident(api: Any, ident: int = 1) -> dict[str, Any]:
    return api.get(f"/incidents/{ident}").json_body


@pytest.fixture
def team(api: Any, bot: Any) -> None:
    put_team(api)


# Opening

def test_an_incident_of_a_team_opens_assigned_to_who_is_on_call_with_rule_1_paged(
        api, client, store, stream, team, bot):
    people.link(store, "ivan_ops", IVAN_PRIVATE, IVAN_PRIVATE, datetime.now(timezone.utc))
    opened = open_for(store)

    assert (opened["team"], opened["assignee"]) == ("ops", "ivan_ops")
    assert incident(api)["escalation"] == {"rule": 1, "loop": 0,
                                           "next_at": at(opened["created_at"], minutes=5).isoformat(
                                               timespec="milliseconds").replace("+00:00", "Z")}
    deliver_new(client, stream)
    group, direct = bot.messages
    assert (group["chat_id"], group["message_thread_id"]) == (str(TEAM_CHAT), TOPIC)
    assert group["text"] == ("#1 [partner] new: Касса #7 не отвечает; assignee @ivan_ops; "
                             "paging @ivan_ops")
    assert direct["chat_id"] == str(IVAN_PRIVATE) and direct["text"] == group["text"]


def test_an_incident_without_a_team_is_told_in_the_stages_chat_as_before(api, client, stream, team, bot):
    api.create("Касса #7 не отвечает", "partner")
    deliver_new(client, stream)

    assert [(m["chat_id"], m["text"]) for m in bot.messages] == [
        (CHAT, "#1 [partner] new: Касса #7 не отвечает")]
    assert incident(api)["escalation"] is None


# Steps

def test_rule_2_is_paged_after_rule_1s_delay_and_recorded_in_the_history(api, client, store, team, bot):
    opened = open_for(store)

    escalate(client, at(opened["created_at"], minutes=4, seconds=59))
    assert bot.texts == []
    escalate(client, at(opened["created_at"], minutes=5, seconds=1))

    [message] = bot.messages
    assert message["text"].startswith("#1 still new, escalation rule 2 of 2: @maria_sre — Касса #7")
    assert message["text"].endswith("; assignee @ivan_ops")
    assert (message["chat_id"], message["message_thread_id"]) == (str(TEAM_CHAT), TOPIC)
    current = incident(api)
    entry = current["history"][-1]
    assert (entry["status"], entry["by"], entry["note"]) == ("new", "escalation",
                                                             "notified @maria_sre (rule 2, loop 0)")
    assert current["status"] == "new" and current["escalation"]["rule"] == 2
    assert current["escalation"]["next_at"].startswith(
        at(opened["created_at"], minutes=15, seconds=1).isoformat(timespec="seconds").replace("+00:00", ""))


def test_the_rules_start_again_for_each_loop_then_the_escalation_ends(api, client, store, bot):
    put_team(api, num_loops=1)
    opened = open_for(store)
    start = at(opened["created_at"])

    moments = [start + timedelta(minutes=m, seconds=1) for m in (5, 15, 20, 30, 31, 60)]
    for moment in moments:
        escalate(client, moment)

    assert [text.split(":")[0] for text in bot.texts] == [
        "#1 still new, escalation rule 2 of 2, loop 1 of 2",
        "#1 still new, escalation rule 1 of 2, loop 2 of 2",
        "#1 still new, escalation rule 2 of 2, loop 2 of 2",
    ]
    assert "@ivan_ops" in bot.texts[1]
    current = incident(api)
    assert current["escalation"] is None
    assert [e["by"] for e in current["history"]] == ["api", "escalation", "escalation", "escalation"]


def test_team_target_mentions_every_member_in_one_message(api, client, store, bot):
    put_team(api, rotation={"members": ["ivan_ops", "maria_sre", "oleg_k"], "start": "2026-01-01T00:00",
                            "shift": "daily"},
             escalation_rules=[{"escalation_delay_in_minutes": 1, "targets": ["on_call"]},
                               {"escalation_delay_in_minutes": 1, "targets": ["team", "@maria_sre"]}])
    opened = open_for(store)

    escalate(client, at(opened["created_at"], minutes=2))

    [text] = bot.texts
    assert "@ivan_ops @maria_sre @oleg_k —" in text


# Stops

@pytest.mark.parametrize("status", ["in_progress", "resolved", "closed"])
def test_an_incident_that_leaves_new_is_never_escalated_again(api, client, store, team, bot, status):
    opened = open_for(store)
    api.patch("/incidents/1", {"status": status})

    assert incident(api)["escalation"] is None
    escalate(client, at(opened["created_at"], minutes=6))
    escalate(client, at(opened["created_at"], hours=2))
    assert bot.texts == []


def test_take_in_the_chat_stops_the_escalation_and_assigns_the_taker(api, client, store, team, bot):
    opened = open_for(store)
    reply = post_update(client, telegram_update("#1 take", 1))

    current = incident(api)
    assert (current["status"], current["assignee"], current["escalation"]) == ("in_progress", "ivan_ops", None)
    assert current["history"][-1]["by"] == "telegram:ivan_ops"
    assert reply["text"] == "#1 → in_progress, assignee @ivan_ops"
    escalate(client, at(opened["created_at"], minutes=6))
    assert bot.texts == []


def test_a_team_deleted_and_created_again_before_the_run_does_not_inherit_the_escalation(
        api, client, store, team, bot):
    opened = open_for(store)
    assert api.request("DELETE", "/teams/ops").status_code == 204
    put_team(api)

    escalate(client, at(opened["created_at"], minutes=6))

    assert bot.texts == []
    assert incident(api)["escalation"] is None


def test_deleting_the_team_stops_its_incidents_escalation_for_good(api, client, store, team, bot):
    opened = open_for(store)
    assert api.request("DELETE", "/teams/ops").status_code == 204

    escalate(client, at(opened["created_at"], minutes=6))
    put_team(api)  # created again: the incident's escalation stays stopped
    escalate(client, at(opened["created_at"], minutes=20))

    assert bot.texts == []
    current = incident(api)
    assert current["escalation"] is None and current["team"] == "ops"
    assert current["history"][-1]["note"] == "escalation stopped: team 'ops' was deleted"


# Exactly once

def test_a_redelivered_run_notifies_nobody_twice(api, client, store, team, bot):
    people.link(store, "maria_sre", 222222222, 222222222, datetime.now(timezone.utc))
    opened = open_for(store)
    moment = at(opened["created_at"], minutes=5, seconds=30)

    escalate(client, moment)
    escalate(client, moment)
    escalate(client, moment + timedelta(seconds=20))

    assert [m["chat_id"] for m in bot.messages] == [str(TEAM_CHAT), "222222222"]
    assert [e["by"] for e in incident(api)["history"]] == ["api", "escalation"]


def test_a_concurrent_run_notifies_nobody_twice(api, client, store, team, bot, monkeypatch):
    """A second run starting while the first one sends finds the notice claimed and leaves it."""
    from chalicelib import telegram_client

    opened = open_for(store)
    moment = at(opened["created_at"], minutes=6)
    original = telegram_client.BotApi.send_message
    inner: list[Any] = []

    def send_and_race(self: Any, *args: Any, **kwargs: Any) -> None:
        if not inner:
            inner.append(threading.current_thread())
            escalate(client, moment)  # the other run, while this one holds the claim
        original(self, *args, **kwargs)

    monkeypatch.setattr(telegram_client.BotApi, "send_message", send_and_race)
    escalate(client, moment)

    assert len(bot.texts) == 1
    assert [e["by"] for e in incident(api)["history"]] == ["api", "escalation"]


def test_a_run_that_fails_midway_loses_no_notice_and_its_retry_sends_each_once(api, client, store, team, bot):
    first = open_for(store, description="first")
    open_for(store, description="second")
    moment = at(first["created_at"], minutes=6)
    bot.answers = [(200, None), server_error()]  # two notices go one by one: the second fails

    with pytest.raises(SendFailed):
        escalate(client, moment)
    assert [e["by"] for e in incident(api, 2)["history"]] == ["api"]
    escalate(client, moment + timedelta(minutes=1))

    assert sorted(text.split(" ")[0] for text in bot.texts) == ["#1", "#2"]
    for ident in (1, 2):
        assert [e["by"] for e in incident(api, ident)["history"]] == ["api", "escalation"]


# PATCH

def test_patching_the_team_of_a_new_incident_starts_its_escalation_from_rule_1(api, client, stream, team, bot):
    api.create("Касса #7 не отвечает", "partner")
    response = api.patch("/incidents/1", {"team": "ops"})

    body = response.json_body
    assert response.status_code == 200
    assert (body["team"], body["assignee"], body["escalation"]["rule"]) == ("ops", "ivan_ops", 1)
    assert body["history"][-1]["note"] == "team → ops; assignee → @ivan_ops"
    deliver_new(client, stream)
    assert bot.messages[-1]["chat_id"] == str(TEAM_CHAT)
    assert bot.texts[-1] == "#1 team → ops; assignee → @ivan_ops by api; paging @ivan_ops"


def test_patching_the_team_of_an_incident_in_progress_starts_no_escalation(api, team, bot):
    api.create()
    api.patch("/incidents/1", {"status": "in_progress"})

    body = api.patch("/incidents/1", {"team": "ops", "assignee": "oleg_k"}).json_body

    assert (body["team"], body["assignee"], body["escalation"]) == ("ops", "oleg_k", None)


def test_patching_the_assignee_alone_is_a_history_entry_and_the_same_value_is_a_no_op(api, team):
    api.create()
    first = api.patch("/incidents/1", {"assignee": "maria_sre", "note": "она в курсе"}).json_body
    again = api.patch("/incidents/1", {"assignee": "maria_sre"}).json_body

    assert first["history"][-1]["note"] == "assignee → @maria_sre: она в курсе"
    assert again["history_count"] == first["history_count"] == 2
    assert api.patch("/incidents/1", {"assignee": None}).json_body["assignee"] is None


# Direct messages: at most one a minute per person, more folded into the next one

def test_a_second_direct_message_in_a_minute_waits_and_the_next_minute_carries_it(
        api, client, store, stream, team, bot):
    from chalicelib import notifier, telegram_client

    people.link(store, "ivan_ops", IVAN_PRIVATE, IVAN_PRIVATE, datetime.now(timezone.utc))
    sender, settings = telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT)
    first = open_for(store, description="first")
    minute = at(first["created_at"], seconds=1)
    notifier.deliver_changes(store, sender, settings, stream.poll(), minute)
    open_for(store, description="second")
    open_for(store, description="third")
    notifier.deliver_changes(store, sender, settings, stream.poll(), minute)

    def direct() -> list[str]:
        return [m["text"] for m in bot.messages if m["chat_id"] == str(IVAN_PRIVATE)]

    assert [text.split(" ")[0] for text in direct()] == ["#1"]
    escalate(client, minute + timedelta(minutes=1))

    later = direct()[1]
    assert [line.split(" ")[0] for line in later.split("\n")] == ["#2", "#3"]
    escalate(client, minute + timedelta(minutes=2))
    assert len(direct()) == 2


def test_a_team_incident_is_reminded_in_its_team_chat_and_topic(store, team, bot):
    from chalicelib import notifier, telegram_client

    opened = open_for(store)
    notifier.send_reminders(store, telegram_client.BotApi(TOKEN, bot.url), notifier.Settings(chat_id=CHAT),
                            at(opened["created_at"], minutes=16))

    [message] = bot.messages
    assert (message["chat_id"], message["message_thread_id"], message["text"]) == (
        str(TEAM_CHAT), TOPIC, "#1 has waited 16 min in new")
