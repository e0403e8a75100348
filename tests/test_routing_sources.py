"""Routes applied end to end: an incident opened by each source (the API, a CloudWatch alarm
through SNS and EventBridge, Alertmanager, PagerDuty, a Telegram message) lands in its team,
with the labels its source gave."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from chalicelib.oncall.store import RouteStore
from conftest import API_KEY, load_payload

PAYLOADS = Path(__file__).parent / "payloads"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000017"
TELEGRAM_SECRET = "tg-secret_0123456789"
STAGE_CHAT = -1001234567890  # the stage's allowed group (.chalice/config.json), no team's
PAYMENTS_CHAT = -1005550001111
TEAM = {"time_zone": "UTC", "rotation": {"members": ["ivan_ops"], "start": "2026-12-01T10:00", "shift": "daily"},
        "escalation_rules": [{"escalation_delay_in_minutes": 15, "targets": ["on_call"]}]}
ON_CALL = {"ops": "ivan_ops", "payments": "maria_sre", "scooters": "oleg_k", "monitoring": "nina_dba"}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEGRATION_KEYS", ROUTING_KEY)
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", TELEGRAM_SECRET)


@pytest.fixture
def teams(api: Any) -> None:
    """Four teams, each with its own person on call; payments has a group of its own."""
    for index, (name, person) in enumerate(ON_CALL.items()):
        body = {**TEAM, "chat_id": PAYMENTS_CHAT if name == "payments" else -1005550002000 - index,
                "rotation": {**TEAM["rotation"], "members": [person]}}
        assert api.request("PUT", f"/teams/{name}", json_body=body).status_code == 201


def set_routes(api: Any, *routes: dict[str, Any]) -> None:
    response = api.request("PUT", "/routes", json_body={"routes": list(routes)})
    assert response.status_code == 200, response.body


def only_incident(api: Any) -> dict[str, Any]:
    (item,) = api.get("/incidents").json_body["items"]
    return api.get(f"/incidents/{item['id']}").json_body


def assert_in_team(incident: dict[str, Any], team: str) -> None:
    """Routed means the whole opening of a team's incident: its person on call, escalation rule 1."""
    assert incident["team"] == team
    assert incident["assignee"] == ON_CALL[team]
    assert incident["escalation"]["rule"] == 1


# --- each source ---


def test_an_incident_created_through_the_api_goes_to_the_team_its_labels_route_it_to(api, teams):
    set_routes(api, {"match": {"labels": {"service": "payments"}}, "team": "payments"},
               {"match": {}, "team": "ops"})

    created = api.post("/incidents", {"description": "Платежи не проходят", "source": "partner",
                                      "labels": {"service": "payments", "region": "msk"}})

    assert created.status_code == 201
    assert created.json_body["labels"] == {"service": "payments", "region": "msk"}
    assert_in_team(created.json_body, "payments")
    assert_in_team(api.get(f"/incidents/{created.json_body['id']}").json_body, "payments")
    assert api.get("/incidents").json_body["items"][0]["labels"] == {"service": "payments", "region": "msk"}


def test_a_cloudwatch_alarm_through_sns_goes_to_the_team_its_alarm_arn_routes_it_to(client, api, teams):
    set_routes(api, {"match": {"dedup_key_prefix": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:scooter-"},
                     "team": "scooters"}, {"match": {}, "team": "ops"})

    client.lambda_.invoke("on_alarm_notification", load_payload("sns_alarm_record.json"))

    incident = only_incident(api)
    assert incident["history"][0]["by"] == "cloudwatch"
    assert_in_team(incident, "scooters")
    assert incident["labels"] == {}


def test_a_cloudwatch_alarm_through_eventbridge_goes_to_the_team_its_text_routes_it_to(client, api, teams):
    set_routes(api, {"match": {"source": ["operator"]}, "team": "ops"},
               {"match": {"source": ["monitoring"], "text": "SCOOTER-42"}, "team": "scooters"})

    client.lambda_.invoke("on_alarm_state_change", load_payload("eventbridge_alarm.json"))

    assert_in_team(only_incident(api), "scooters")


def test_an_alertmanager_alert_goes_to_the_team_its_labels_route_it_to_and_keeps_its_labels(api, teams, drain):
    set_routes(api, {"match": {"labels": {"instance": "https://pos-7.example.org"}}, "team": "payments"},
               {"match": {"severity": ["critical"]}, "team": "monitoring"})
    batch = load_payload("integrations/alertmanager_firing.json")

    response = api.post("/alertmanager", batch, key=None, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 200
    assert drain() == ["applied", "applied"]

    by_key = {item["dedup_key"]: api.get(f"/incidents/{item['id']}").json_body
              for item in api.get("/incidents").json_body["items"]}
    probe, pos = by_key["alertmanager:1a30ba71cca2921f"], by_key["alertmanager:8d3e1f7b2c9a4e60"]
    assert_in_team(probe, "monitoring")  # critical
    assert_in_team(pos, "payments")
    assert pos["labels"] == batch["alerts"][1]["labels"]
    assert probe["labels"] == {"alertname": "ProbeFailure", "instance": "https://server.example.org",
                               "job": "http_checks", "monitor": "master", "severity": "critical"}


def test_a_pagerduty_trigger_goes_to_the_team_its_component_routes_it_to_and_shows_it_as_labels(api, teams, drain):
    set_routes(api, {"match": {"labels": {"component": "postgres", "group": "prod-datapipe"}}, "team": "payments"})
    event = {**load_payload("integrations/pagerduty_trigger.json"), "routing_key": ROUTING_KEY}

    assert api.post("/v2/enqueue", event, key=None).status_code == 202
    assert drain() == ["applied"]

    incident = only_incident(api)
    assert incident["labels"] == {"class": "deploy", "component": "postgres", "group": "prod-datapipe"}
    assert_in_team(incident, "payments")


def telegram(client: Any, text: str, chat: int, update_id: int) -> Any:
    update = load_payload("telegram/new_operator.json")
    update["update_id"] = update_id
    update["message"]["text"] = text
    update["message"]["chat"]["id"] = chat
    return client.http.post("/telegram/webhook", body=json.dumps(update, ensure_ascii=False), headers={
        "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})


def test_a_telegram_message_in_the_stage_group_goes_to_the_team_its_text_routes_it_to(client, api, teams):
    set_routes(api, {"match": {"text": "самокат"}, "team": "scooters"}, {"match": {}, "team": "ops"})

    assert telegram(client, "[operator] Самокат #42 не в сети", STAGE_CHAT, 1).status_code == 200

    incident = only_incident(api)
    assert incident["history"][0]["by"] == "telegram:ivan_ops"
    assert_in_team(incident, "scooters")


def test_a_telegram_message_in_a_teams_group_belongs_to_that_team_whatever_the_routes_say(client, api, teams):
    set_routes(api, {"match": {"text": "самокат"}, "team": "scooters"}, {"match": {}, "team": "ops"})

    assert telegram(client, "[operator] Самокат #42 не в сети", PAYMENTS_CHAT, 2).status_code == 200

    assert_in_team(only_incident(api), "payments")


# --- what routing does not do ---


def test_an_incident_no_route_matches_has_no_team_and_no_assignee(api, teams):
    set_routes(api, {"match": {"source": ["partner"]}, "team": "payments"})

    created = api.create(source="operator")

    assert (created["team"], created["assignee"], created["escalation"], created["labels"]) == (None, None, None, {})


def test_an_absorbed_occurrence_keeps_the_team_its_incident_opened_with(api, teams):
    set_routes(api, {"match": {"text": "платежи"}, "team": "payments"})
    first = api.create("Платежи не проходят", dedup_key="payments-down")
    set_routes(api, {"match": {}, "team": "ops"})

    again = api.post("/incidents", {"description": "Платежи не проходят", "source": "operator",
                                    "dedup_key": "payments-down"})

    assert again.status_code == 200
    assert again.json_body["id"] == first["id"] and again.json_body["occurrences"] == 2
    assert_in_team(again.json_body, "payments")


def test_a_route_whose_team_was_deleted_is_passed_over_for_the_next_one_that_matches(api, teams, caplog):
    set_routes(api, {"match": {"text": "самокат"}, "team": "scooters"}, {"match": {}, "team": "ops"})
    assert api.request("DELETE", "/teams/scooters").status_code == 204

    with caplog.at_level(logging.WARNING, logger="chalicelib.services"):
        created = api.create("Самокат #42 не в сети")

    assert_in_team(created, "ops")
    assert any("scooters" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_new_routes_apply_to_the_very_next_incident(api, teams):
    set_routes(api, {"match": {}, "team": "ops"})
    assert api.create("first")["team"] == "ops"
    set_routes(api, {"match": {}, "team": "payments"})
    assert api.create("second")["team"] == "payments"
    set_routes(api)
    assert api.create("third")["team"] is None


# --- what routing reads ---


@pytest.fixture
def route_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    original = RouteStore.routes

    def counted(self: RouteStore) -> list[dict[str, Any]]:
        reads.append(1)
        return original(self)

    monkeypatch.setattr(RouteStore, "routes", counted)
    return reads


def test_an_alertmanager_batch_reads_the_routes_once_however_many_incidents_it_opens(api, teams, drain, route_reads):
    set_routes(api, {"match": {}, "team": "ops"})
    batch = load_payload("integrations/alertmanager_firing.json")
    batch["alerts"] += [{**batch["alerts"][0], "fingerprint": f"extra{n}"} for n in range(3)]

    api.post("/alertmanager", batch, key=None, headers={"Authorization": f"Bearer {API_KEY}"})
    assert drain() == ["applied"] * 5

    assert len(route_reads) == 1
    assert {item["team"] for item in api.get("/incidents").json_body["items"]} == {"ops"}


def test_an_occurrence_absorbed_by_an_open_incident_does_not_read_the_routes(api, teams, route_reads):
    set_routes(api, {"match": {}, "team": "ops"})
    api.create(dedup_key="scooter-42")
    assert len(route_reads) == 1

    api.create(dedup_key="scooter-42")

    assert len(route_reads) == 1


# --- labels as each source gives them ---


@pytest.mark.parametrize("labels, says", [
    (["service", "payments"], "labels must be an object of at most 16 pairs of strings: keys 1–64 characters, "
                              "values up to 256; got list"),
    ({"service": 7}, "labels['service'] must be a string of up to 256 characters; got int"),
    ({"service": None}, "labels['service'] must be a string of up to 256 characters; got null"),
    ({f"k{i:02}": "v" for i in range(17)}, "labels has 17 pairs; at most 16 are allowed"),
    ({"": "v"}, "labels key '' is 0 characters; keys must be 1–64"),
    ({"k" * 65: "v"}, "characters; keys must be 1–64"),
    ({"service": "v" * 257}, "labels['service'] is 257 characters; at most 256 are allowed"),
])
def test_labels_past_their_limits_are_refused_by_the_api_and_nothing_is_created(api, labels, says):
    response = api.post("/incidents", {"description": "x", "source": "operator", "labels": labels})

    assert response.status_code == 400
    assert says in response.json_body["Message"]
    assert api.get("/incidents").json_body["items"] == []


def test_sixteen_labels_at_their_longest_are_kept_as_given(api):
    labels = {f"{i:02}" + "k" * 62: "v" * 256 for i in range(16)}

    created = api.create(labels=labels)

    assert created["labels"] == labels
    assert api.get(f"/incidents/{created['id']}").json_body["labels"] == labels


def test_an_alert_with_too_many_or_too_long_labels_is_still_opened_with_the_first_sixteen_that_fit(api, drain):
    batch = load_payload("integrations/alertmanager_firing.json")
    alert = batch["alerts"][0]
    alert["labels"] = {**{f"l{i:02}": f"value {i}" for i in range(20)}, "a" * 65: "dropped",
                       "a_long_one": "x" * 300}
    batch["alerts"] = [alert]

    api.post("/alertmanager", batch, key=None, headers={"Authorization": f"Bearer {API_KEY}"})
    assert drain() == ["applied"]

    labels = only_incident(api)["labels"]
    assert list(sorted(labels)) == ["a_long_one", *(f"l{i:02}" for i in range(15))]
    assert labels["a_long_one"] == "x" * 256


def test_a_pagerduty_trigger_with_only_a_class_over_256_characters_gets_that_one_label_cut(api, drain):
    event = {**load_payload("integrations/pagerduty_trigger.json"), "routing_key": ROUTING_KEY}
    event["payload"] = {k: v for k, v in event["payload"].items() if k not in ("component", "group", "class")}
    event["payload"]["class"] = "x" * 300

    assert api.post("/v2/enqueue", event, key=None).status_code == 202
    drain()

    assert only_incident(api)["labels"] == {"class": "x" * 256}
