"""One open owner per dedup_key: a reopen never makes a second one, however it races."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib import services
from chalicelib.incidents import DedupKeyHeld, InvalidInput, refuse_reserved_dedup_key


def create(api: Any, key: str, description: str = "Касса #7 не отвечает") -> Any:
    return api.post("/incidents", {"description": description, "source": "partner", "dedup_key": key})


def open_holders(api: Any, key: str) -> list[int]:
    items = []
    for status in ("new", "in_progress"):
        items += api.get(f"/incidents?status={status}&limit=100").json_body["items"]
    return sorted(item["id"] for item in items if item["dedup_key"] == key)


def test_reopening_an_incident_whose_key_another_open_incident_holds_is_409_naming_it(api):
    first = create(api, "pos-7").json_body
    api.patch(f"/incidents/{first['id']}", {"status": "resolved"})
    second = create(api, "pos-7").json_body
    assert (second["id"], second["occurrences"]) == (2, 1)

    response = api.patch(f"/incidents/{first['id']}", {"status": "in_progress"})

    assert response.status_code == 409
    assert response.json_body["Code"] == "ConflictError"
    assert "#2" in response.json_body["Message"] and "pos-7" in response.json_body["Message"]
    assert api.get(f"/incidents/{first['id']}").json_body["status"] == "resolved"
    assert open_holders(api, "pos-7") == [2]


def test_new_reports_go_to_the_incident_holding_the_key(api):
    create(api, "pos-7")
    api.patch("/incidents/1", {"status": "resolved"})
    create(api, "pos-7")
    api.patch("/incidents/1", {"status": "in_progress"})  # refused

    repeat = create(api, "pos-7")

    assert (repeat.status_code, repeat.json_body["id"], repeat.json_body["occurrences"]) == (200, 2, 2)


def test_once_the_holder_is_resolved_the_older_incident_can_be_reopened_and_takes_the_key_back(api):
    create(api, "pos-7")
    api.patch("/incidents/1", {"status": "resolved"})
    create(api, "pos-7")
    api.patch("/incidents/2", {"status": "resolved"})

    reopened = api.patch("/incidents/1", {"status": "in_progress", "note": "same fault again"})

    assert reopened.status_code == 200 and reopened.json_body["status"] == "in_progress"
    assert reopened.json_body["history"][-1]["note"] == "same fault again"
    assert api.patch("/incidents/2", {"status": "in_progress"}).status_code == 409
    repeat = create(api, "pos-7")
    assert (repeat.json_body["id"], repeat.json_body["occurrences"]) == (1, 2)


def test_reopening_an_incident_whose_key_nobody_took_keeps_working(api):
    create(api, "pos-7")
    api.patch("/incidents/1", {"status": "resolved"})

    assert api.patch("/incidents/1", {"status": "in_progress"}).status_code == 200
    assert create(api, "pos-7").json_body["occurrences"] == 2


def test_a_reopen_racing_a_new_report_leaves_exactly_one_open_owner(api, store):
    for round_ in range(12):
        key = f"pos-{round_}"
        first = services.open_incident(store, description="x", source="partner", by="api", dedup_key=key)
        services.change_status(store, first.incident["id"], "resolved", by="api")
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def reopen() -> None:
            barrier.wait()
            try:
                outcomes.append(services.change_status(store, first.incident["id"], "in_progress", by="api"))
            except DedupKeyHeld as refused:
                outcomes.append(refused)

        def report() -> None:
            barrier.wait()
            outcomes.append(services.open_incident(store, description="x", source="partner", by="api",
                                                   dedup_key=key))

        threads = [threading.Thread(target=reopen), threading.Thread(target=report)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(outcomes) == 2
        assert len(open_holders(api, key)) == 1, (round_, outcomes)


RESERVED_MESSAGE = ("dedup_key must not start with pagerduty:, alertmanager: or arn:<partition>:cloudwatch: "
                    "(those keys belong to the PagerDuty, Alertmanager and CloudWatch alarm integrations)")


@pytest.mark.parametrize("key", [
    "pagerduty:disk-full", "alertmanager:1a30ba71cca2921f",
    "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:pos-7", "arn:aws-cn:cloudwatch:cn-north-1:1:alarm:x",
])
def test_a_client_cannot_take_a_dedup_key_an_integration_owns(api, key):
    response = create(api, key)
    assert response.status_code == 400
    assert response.json_body["Message"] == f"{RESERVED_MESSAGE}; got {key[:40]!r}"
    assert open_holders(api, key) == []


@pytest.mark.parametrize("key", ["PagerDuty:disk-full", "my-pagerduty:x", "arn:aws:sns:eu-west-1:1:alarms",
                                 "alertmanager", "pos-7"])
def test_keys_outside_the_integrations_namespaces_stay_the_clients(api, key):
    assert create(api, key).status_code == 201


def test_every_key_an_integration_makes_is_in_a_reserved_namespace():
    from chalicelib import alarms, alertmanager, pagerduty
    from tests.conftest import load_payload

    batch = {"alerts": [{"status": "firing", "labels": {"alertname": "x"}, "startsAt": "2026-11-23T10:00:00Z"}]}
    event = load_payload("eventbridge_alarm.json")
    derived = {**event, "resources": []}
    keys = [
        pagerduty.incident_key("disk-full"), pagerduty.incident_key("k" * 255),
        alertmanager.parse_batch(batch).alerts[0].dedup_key,
        alarms.parse_eventbridge_event(event).dedup_key, alarms.parse_eventbridge_event(derived).dedup_key,
    ]
    for key in keys:
        with pytest.raises(InvalidInput, match="must not start with"):
            refuse_reserved_dedup_key(key)
