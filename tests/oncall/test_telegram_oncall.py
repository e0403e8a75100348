"""The Telegram side of on call, through POST /telegram/webhook with Bot API update shapes:
/start in a private chat, username changes, team chats, /oncall and /override."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.oncall import chats, people
from tests.test_telegram_webhook import SECRET, send

GROUP = -1001234567890  # the stage's allowed chat (.chalice/config.json)
TEAM_CHAT = -1005550001111  # the ops team's group, in no allowed list
OTHER_CHAT = -1009876543210  # neither allowed nor a team's
AT = datetime(2026, 12, 9, 12, 0, tzinfo=timezone.utc)  # maria_sre's week (see TEAM)
MARIA = 333333333
OPS = {
    "chat_id": TEAM_CHAT,
    "time_zone": "Europe/Moscow",
    "rotation": {"members": ["ivan_ops", "maria_sre", "oleg_k"], "start": "2026-12-01T10:00",
                 "shift": "weekly"},
    "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}],
}


@pytest.fixture(autouse=True)
def telegram_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", SECRET)


_next_update = iter(range(870000001, 880000000))


def message(text: str, *, chat: int = TEAM_CHAT, user_id: int = MARIA, username: str | None = "maria_sre",
            at: datetime = AT) -> dict[str, Any]:
    """A message update as Telegram delivers it; a chat id equal to the user's is their private chat."""
    sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Мария", "language_code": "ru"}
    if username is not None:
        sender["username"] = username
    if chat == user_id:
        chat_object: dict[str, Any] = {"id": chat, "first_name": "Мария", "type": "private"}
        if username is not None:
            chat_object["username"] = username
    else:
        chat_object = {"id": chat, "title": "Ops", "type": "supergroup"}
    update_id = next(_next_update)
    return {"update_id": update_id, "message": {
        "message_id": update_id % 100000, "from": sender, "chat": chat_object,
        "date": int(at.timestamp()), "text": text}}


def said(client: Any, update: dict[str, Any]) -> str | None:
    """The bot's answer in the chat, None when it stays quiet."""
    response = send(client, update)
    assert response.status_code == 200, response.body
    answer = json.loads(response.body)
    if not answer:
        return None
    assert answer["method"] == "sendMessage"
    assert answer["chat_id"] == update["message"]["chat"]["id"]
    assert answer["reply_to_message_id"] == update["message"]["message_id"]
    return answer["text"]


def put_team(api: Any, name: str = "ops", **changes: Any) -> None:
    response = api.request("PUT", f"/teams/{name}", json_body={**copy.deepcopy(OPS), **changes})
    assert response.status_code in (200, 201), response.body


# /start in a private chat, and usernames that change


def test_start_in_a_private_chat_links_the_username_and_welcomes_the_person(client, store):
    text = said(client, message("/start", chat=MARIA))

    assert text == ("Hello, maria_sre! When a team pages @maria_sre, you will get a direct message "
                    "here as well as the mention in the team's chat.")
    assert people.direct_chat(store, "maria_sre") == MARIA


def test_start_addressed_to_the_bot_by_name_or_with_a_deep_link_payload_links_too(client, store):
    assert said(client, message("/start@IncidentBot", chat=MARIA)).startswith("Hello, maria_sre!")
    assert said(client, message("/start from-the-docs", chat=444444444, user_id=444444444,
                                username="oleg_k")).startswith("Hello, oleg_k!")
    assert people.direct_chat(store, "oleg_k") == 444444444


def test_start_from_a_person_without_a_username_asks_them_to_set_one(client, store):
    text = said(client, message("/start", chat=MARIA, username=None))

    assert "no Telegram username" in text and "Set one" in text
    assert people.linked_user(store, MARIA) is None


def test_anything_but_start_in_a_private_chat_is_ignored(client, api, store):
    assert said(client, message("[operator] Самокат 42 не в сети", chat=MARIA)) is None
    assert said(client, message("/oncall", chat=MARIA)) is None

    assert api.get("/incidents").json_body["items"] == []
    assert people.direct_chat(store, "maria_sre") is None


def test_a_username_change_is_followed_on_the_next_message_from_that_user_in_any_chat(client, store):
    said(client, message("/start", chat=MARIA))

    said(client, message("просто болтаю", chat=OTHER_CHAT, username="maria_oncall"))

    assert people.direct_chat(store, "maria_oncall") == MARIA
    assert people.direct_chat(store, "maria_sre") is None


def test_a_dropped_username_unlinks_the_person(client, store):
    said(client, message("/start", chat=MARIA))

    said(client, message("просто болтаю", chat=GROUP, username=None))

    assert people.direct_chat(store, "maria_sre") is None


def test_a_user_whose_username_did_not_change_costs_no_read_after_their_first_message(
        client, store, monkeypatch):
    said(client, message("/start", chat=MARIA))
    reads = []
    original = people.linked_user
    monkeypatch.setattr(people, "linked_user", lambda s, user_id: reads.append(user_id) or original(s, user_id))

    for _ in range(3):
        said(client, message("просто болтаю", chat=GROUP))
        said(client, message("и ещё", chat=GROUP, user_id=444444444, username="oleg_k"))

    assert reads == [444444444]  # Maria's name was checked on /start, Oleg's once


# Team chats


def test_a_message_in_a_team_chat_opens_an_incident_of_that_team(client, api):
    put_team(api)

    text = said(client, message("[operator] Самокат 42 не в сети"))

    assert text == "Incident #1 created: Самокат 42 не в сети"
    incident = api.get("/incidents/1").json_body
    assert incident["team"] == "ops"
    assert incident["history"][0]["by"] == "telegram:maria_sre"


def test_an_allowed_chat_that_is_also_a_teams_gives_its_incidents_that_team(client, api):
    put_team(api, chat_id=GROUP)

    said(client, message("/new POS 7 not answering", chat=GROUP))

    assert api.get("/incidents/1").json_body["team"] == "ops"


def test_an_incident_opened_in_an_allowed_chat_of_no_team_has_no_team(client, api):
    put_team(api)

    said(client, message("/new POS 7 not answering", chat=GROUP))

    assert api.get("/incidents/1").json_body["team"] is None


def test_a_command_in_a_forum_topic_of_the_team_chat_is_answered_in_that_topic(client, api):
    put_team(api, thread_id=7)
    update = message("/oncall")
    update["message"].update({"message_thread_id": 42, "is_topic_message": True})

    response = send(client, update)

    assert json.loads(response.body)["message_thread_id"] == 42


def test_a_chat_that_is_neither_allowed_nor_a_teams_is_refused_as_before(client, api):
    put_team(api)

    assert said(client, message("[operator] Самокат 42 не в сети", chat=OTHER_CHAT)) is None
    assert said(client, message("/oncall", chat=OTHER_CHAT)) is None

    assert api.get("/incidents").json_body["items"] == []


def test_a_team_created_after_the_bot_last_read_the_teams_is_served_at_once(client, api):
    assert said(client, message("/oncall")) is None  # no team has this chat yet

    put_team(api)

    assert said(client, message("/oncall")).startswith("On call for ops:")


def test_a_deleted_teams_chat_is_no_longer_served(client, api):
    put_team(api)
    said(client, message("/oncall"))

    assert api.request("DELETE", "/teams/ops").status_code == 204

    assert said(client, message("/oncall")) is None


def test_the_teams_are_read_once_for_many_updates(client, api, monkeypatch):
    put_team(api)
    reads = []
    original = chats.TeamStore.teams
    monkeypatch.setattr(chats.TeamStore, "teams", lambda self: reads.append(1) or original(self))

    for text in ("/oncall", "просто болтаю", "/oncall"):
        said(client, message(text))
    said(client, message("просто болтаю", chat=OTHER_CHAT))

    assert len(reads) == 1


# /oncall


def test_oncall_in_a_team_chat_says_who_until_when_in_the_teams_time_and_utc_and_who_is_next(client, api):
    put_team(api)

    text = said(client, message("/oncall"))

    assert text == ("On call for ops: maria_sre until 2026-12-15 10:00 Europe/Moscow "
                    "(2026-12-15 07:00 UTC), then oleg_k.")


def test_oncall_takes_the_moment_from_the_message_date(client, api):
    put_team(api)

    text = said(client, message("/oncall@IncidentBot", at=datetime(2026, 12, 16, 9, 0, tzinfo=timezone.utc)))

    assert text.startswith("On call for ops: oleg_k until 2026-12-22 10:00 Europe/Moscow")
    assert text.endswith("then ivan_ops.")


def test_oncall_names_an_override_as_one(client, api):
    put_team(api)
    said(client, message("/override 4h", user_id=444444444, username="oleg_k"))

    text = said(client, message("/oncall"))

    assert text == ("On call for ops: oleg_k (override) until 2026-12-09 19:00 Europe/Moscow "
                    "(2026-12-09 16:00 UTC), then maria_sre.")


def test_oncall_in_a_team_of_one_says_nobody_else_comes(client, api):
    put_team(api, rotation={"members": ["maria_sre"], "start": "2026-12-01T10:00", "shift": "daily"})

    assert said(client, message("/oncall")) == "On call for ops: maria_sre, with nobody else in the rotation."


def test_oncall_in_an_allowed_chat_of_no_team_says_so(client, api):
    put_team(api)

    text = said(client, message("/oncall", chat=GROUP))

    assert text.startswith("This chat is no team's chat")
    assert "chat_id" in text


# /override


def test_override_puts_the_sender_on_call_from_the_message_for_that_long(client, api):
    put_team(api)

    text = said(client, message("/override 4h", user_id=444444444, username="oleg_k"))

    assert text == "oleg_k is on call for ops until 2026-12-09 19:00 Europe/Moscow (2026-12-09 16:00 UTC)."
    overrides = api.get("/teams/ops/overrides").json_body["items"]
    assert [(o["user"], o["start"], o["end"]) for o in overrides] == [
        ("oleg_k", "2026-12-09T12:00:00.000Z", "2026-12-09T16:00:00.000Z")]
    at = api.get("/teams/ops/oncall?at=2026-12-09T15:59:00Z").json_body
    assert (at["user"], at["override"]) == ("oleg_k", True)


def test_an_override_telegram_delivers_again_puts_the_sender_on_call_once(client, api):
    put_team(api)
    update = message("/override 4h", user_id=444444444, username="oleg_k")

    first = said(client, update)
    again = said(client, copy.deepcopy(update))  # our first answer was lost: the same update_id

    assert again == first
    overrides = api.get("/teams/ops/overrides").json_body["items"]
    assert [(o["user"], o["end"]) for o in overrides] == [("oleg_k", "2026-12-09T16:00:00.000Z")]


def test_two_overrides_sent_as_two_messages_are_two_overrides(client, api):
    put_team(api)

    said(client, message("/override 4h", user_id=444444444, username="oleg_k"))
    said(client, message("/override 4h", user_id=444444444, username="oleg_k"))

    assert len(api.get("/teams/ops/overrides").json_body["items"]) == 2


@pytest.mark.parametrize("given, minutes", [("30m", 30), ("90min", 90), ("1d", 1440), ("31d", 31 * 1440),
                                            ("2 H", 120)])
def test_override_takes_minutes_hours_and_days(client, api, given, minutes):
    put_team(api)

    said(client, message(f"/override {given}"))

    (override,) = api.get("/teams/ops/overrides").json_body["items"]
    start, end = (datetime.fromisoformat(override[k]) for k in ("start", "end"))
    assert (end - start).total_seconds() == minutes * 60


@pytest.mark.parametrize("given", ["", "4", "4x", "four hours", "0h", "32d", "744h1m", "99999d", "-1h"])
def test_a_duration_that_is_not_understood_or_out_of_bounds_is_answered_with_what_is_allowed(
        client, api, given):
    put_team(api)

    text = said(client, message(f"/override {given}".strip()))

    assert text.startswith("Not accepted: /override takes how long you go on call from now, such as "
                           "30m, 4h or 1d")
    assert "from 1 minute to 31 days" in text
    assert api.get("/teams/ops/overrides").json_body["items"] == []


def test_override_from_a_sender_without_a_username_asks_them_to_set_one(client, api):
    put_team(api)

    text = said(client, message("/override 4h", username=None))

    assert "no Telegram username" in text
    assert api.get("/teams/ops/overrides").json_body["items"] == []


def test_override_in_a_chat_of_no_team_says_so(client, api):
    put_team(api)

    assert said(client, message("/override 4h", chat=GROUP)).startswith("This chat is no team's chat")


def test_override_beyond_the_teams_limit_is_refused_with_the_reason(client, api, monkeypatch):
    from chalicelib.oncall import teams

    put_team(api)
    monkeypatch.setattr(teams, "MAX_OVERRIDES", 1)
    said(client, message("/override 1h"))

    text = said(client, message("/override 2h"))

    assert text.startswith("Not accepted: team 'ops' has 1 current and future overrides, the most allowed")


# The parser alone (no Chalice, no AWS)


def test_the_parser_reads_override_durations_with_their_unit_only():
    from chalicelib import telegram

    def parsed(text: str) -> Any:
        return telegram.parse_update(message(text), frozenset({TEAM_CHAT}))

    assert parsed("/override 30m").minutes == 30
    assert parsed("/override@IncidentBot 4h").minutes == 240
    assert parsed("/override 1D").minutes == 1440
    assert parsed("/override 4").minutes is None
    assert parsed("/override").given == ""
    assert isinstance(parsed("/oncall"), telegram.ShowOnCall)


def test_the_parser_serves_start_in_a_private_chat_only():
    from chalicelib import telegram

    private = telegram.parse_update(message("/start", chat=MARIA), frozenset())
    assert private == telegram.StartPrivate(private.context, MARIA)
    assert private.context.username == "maria_sre"
    assert telegram.parse_update(message("/start", chat=GROUP), frozenset({GROUP})) == telegram.Ignore(
        telegram.NOT_A_COMMAND)
    assert telegram.parse_update(message("hello", chat=MARIA), frozenset()) == telegram.Ignore(
        telegram.PRIVATE_CHAT)
    assert telegram.sender_of(message("hello", username=None)) == (MARIA, None)
