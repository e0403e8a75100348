"""POST /v2/enqueue: PagerDuty Events API v2, driven with the documentation's example events."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from chalicelib.incidents import Unavailable
from chalicelib.store import Store
from conftest import drain_intake

PAYLOADS = Path(__file__).parent / "payloads" / "integrations"
ROUTING_KEY = "R0UT1NGKEY0000000000000000000017"
OTHER_ROUTING_KEY = "second-integration-key"
DEDUP = "samplekeyhere"
INVALID = {"status": "invalid event", "message": "Event object is invalid"}


@pytest.fixture(autouse=True)
def integration_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTEGRATION_KEYS", f"{ROUTING_KEY}, {OTHER_ROUTING_KEY}")


def event(name: str, routing_key: str | None = ROUTING_KEY, **changes: Any) -> dict[str, Any]:
    """A documented example with our routing key; `payload_<field>` changes a payload field."""
    body = json.loads((PAYLOADS / f"pagerduty_{name}.json").read_text(encoding="utf-8"))
    if routing_key is None:
        body.pop("routing_key")
    else:
        body["routing_key"] = routing_key
    for field, value in changes.items():
        if field.startswith("payload_"):
            body["payload"][field.removeprefix("payload_")] = value
        else:
            body[field] = value
    return body


def send(api: Any, body: Any) -> Any:
    """POST /v2/enqueue, then what the intake consumer does a moment later."""
    response = api.post("/v2/enqueue", body, key=None)
    if response.status_code == 202:
        drain_intake()
    return response


def incidents(api: Any) -> list[dict[str, Any]]:
    items = api.get("/incidents").json_body["items"]
    return [api.get(f"/incidents/{item['id']}").json_body for item in items]


def test_a_trigger_opens_a_monitoring_incident_and_answers_as_pagerduty_does(api):
    response = send(api, event("trigger"))

    assert response.status_code == 202
    assert response.json_body == {"status": "success", "message": "Event processed", "dedup_key": DEDUP}
    [opened] = incidents(api)
    payload = event("trigger")["payload"]
    assert (opened["status"], opened["source"], opened["severity"]) == ("new", "monitoring", "info")
    assert opened["description"] == payload["summary"]
    assert opened["dedup_key"] == f"pagerduty:{DEDUP}"
    assert opened["history"][0]["by"] == f"pagerduty:{payload['source']}"


def test_a_trigger_without_dedup_key_gets_one_generated_and_returned_which_then_resolves_it(api):
    response = send(api, event("trigger_no_dedup_key"))
    generated = response.json_body["dedup_key"]
    assert response.status_code == 202 and len(generated) >= 16

    assert send(api, event("resolve", dedup_key=generated)).status_code == 202

    [resolved] = incidents(api)
    assert resolved["status"] == "resolved" and resolved["dedup_key"] == f"pagerduty:{generated}"


def test_two_triggers_without_dedup_key_are_two_incidents(api):
    send(api, event("trigger_no_dedup_key"))
    send(api, event("trigger_no_dedup_key"))
    assert len(incidents(api)) == 2


def test_a_repeated_trigger_counts_an_occurrence_and_raises_the_severity_never_lowers_it(api):
    send(api, event("trigger", payload_severity="warning"))
    send(api, event("trigger", payload_severity="critical"))
    send(api, event("trigger", payload_severity="info"))

    [only] = incidents(api)
    assert (only["occurrences"], only["severity"]) == (3, "critical")
    assert len(only["history"]) == 1


def test_acknowledge_moves_the_open_incident_to_in_progress_and_resolve_resolves_it(api):
    send(api, event("trigger"))
    assert send(api, event("acknowledge")).json_body["dedup_key"] == DEDUP
    [acknowledged] = incidents(api)
    assert acknowledged["status"] == "in_progress"
    assert acknowledged["history"][-1]["by"] == "pagerduty"

    assert send(api, event("resolve")).status_code == 202
    [resolved] = incidents(api)
    assert [h["status"] for h in resolved["history"]] == ["new", "in_progress", "resolved"]


def test_acknowledge_and_resolve_with_nothing_open_change_nothing(api):
    for name in ("acknowledge", "resolve"):
        response = send(api, event(name))
        assert response.status_code == 202
    assert incidents(api) == []


def test_an_acknowledge_after_the_resolve_does_not_reopen(api):
    send(api, event("trigger"))
    send(api, event("resolve"))
    send(api, event("acknowledge"))

    [resolved] = incidents(api)
    assert resolved["status"] == "resolved"
    assert [h["status"] for h in resolved["history"]] == ["new", "resolved"]


def test_a_trigger_after_the_resolve_opens_a_new_incident(api):
    send(api, event("trigger"))
    send(api, event("resolve"))
    send(api, event("trigger"))

    newest, first = incidents(api)
    assert (newest["status"], first["status"]) == ("new", "resolved")
    assert newest["dedup_key"] == first["dedup_key"] == f"pagerduty:{DEDUP}"


def test_acknowledge_names_the_source_when_the_event_carries_one(api):
    send(api, event("trigger"))
    send(api, event("acknowledge", payload={"source": "zabbix.example.org"}))
    assert incidents(api)[0]["history"][-1]["by"] == "pagerduty:zabbix.example.org"


def test_a_pagerduty_key_never_meets_an_api_clients_dedup_key(api):
    api.create("from the API", "monitoring", dedup_key=DEDUP)
    send(api, event("trigger"))
    assert {i["dedup_key"] for i in incidents(api)} == {DEDUP, f"pagerduty:{DEDUP}"}


def test_a_255_character_dedup_key_fits_the_incident_key_limit_and_still_resolves(api):
    long_key = "k" * 255
    send(api, event("trigger", dedup_key=long_key))
    send(api, event("resolve", dedup_key=long_key))
    [resolved] = incidents(api)
    assert resolved["status"] == "resolved" and len(resolved["dedup_key"]) <= 256


@pytest.mark.parametrize("changes, error", [
    ({"payload_summary": None}, "'payload.summary' is missing or blank"),
    ({"payload_summary": "   "}, "'payload.summary' is missing or blank"),
    ({"payload_summary": "x" * 1025}, "'payload.summary' is too long (maximum is 1024 characters)"),
    ({"payload_severity": "fatal"}, "'payload.severity' is invalid (must be one of the following: "
                                    "'critical', 'warning', 'error' or 'info')"),
    ({"payload_severity": None}, "'payload.severity' is missing or blank"),
    ({"payload_source": ""}, "'payload.source' is missing or blank"),
    ({"dedup_key": "d" * 256}, "'dedup_key' is too long (maximum is 255 characters)"),
    ({"dedup_key": 42}, "'dedup_key' must be a string"),
    ({"event_action": "escalate"}, "'event_action' is invalid (must be one of the following: "
                                   "'trigger', 'acknowledge' or 'resolve')"),
    ({"event_action": None}, "'event_action' is missing or blank"),
    ({"payload": "text"}, "'payload' is missing or not an object"),
])
def test_an_invalid_trigger_is_400_invalid_event_with_the_reason_and_stores_nothing(api, changes, error):
    response = send(api, event("trigger", **changes))

    assert response.status_code == 400
    assert response.json_body == {**INVALID, "errors": [error]}
    assert incidents(api) == []


def test_every_problem_of_an_event_is_listed(api):
    body = event("trigger", payload_summary="", payload_severity="fatal", dedup_key="d" * 256)
    assert len(send(api, body).json_body["errors"]) == 3


@pytest.mark.parametrize("name", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_need_a_dedup_key(api, name):
    response = send(api, event(name, dedup_key=None))
    assert response.status_code == 400
    assert response.json_body["errors"] == ["'dedup_key' is missing or blank"]


@pytest.mark.parametrize("routing_key", [None, "", "wrong-key", ROUTING_KEY.lower(), 17])
def test_a_wrong_or_missing_routing_key_is_400_and_stores_nothing_nor_logs_the_key(
    api, caplog, routing_key
):
    caplog.set_level(logging.DEBUG)
    body = event("trigger", routing_key=None if routing_key is None else "placeholder")
    if routing_key is not None:
        body["routing_key"] = routing_key
    response = send(api, body)

    assert response.status_code == 400
    assert response.json_body["status"] == "invalid event"
    assert "routing_key" in response.json_body["errors"][0]
    assert incidents(api) == []
    if isinstance(routing_key, str) and routing_key:
        assert routing_key not in caplog.text


def test_the_routing_key_is_never_stored_or_logged(api, store, caplog):
    caplog.set_level(logging.DEBUG)
    send(api, event("trigger"))
    send(api, event("acknowledge"))
    items = store._client.scan(TableName=store.table_name)["Items"]
    assert ROUTING_KEY not in json.dumps(items)
    assert ROUTING_KEY not in caplog.text


def test_any_configured_integration_key_is_accepted(api):
    assert send(api, event("trigger", routing_key=OTHER_ROUTING_KEY)).status_code == 202


def test_no_integration_key_configured_means_no_event_gets_in(api, monkeypatch):
    monkeypatch.delenv("INTEGRATION_KEYS")
    assert send(api, event("trigger")).status_code == 400
    assert incidents(api) == []


def test_an_api_key_is_not_a_routing_key(api):
    from conftest import API_KEY

    assert send(api, event("trigger", routing_key=API_KEY)).status_code == 400


@pytest.mark.parametrize("body", [b"{not json", b"[]", b""])
def test_a_body_that_is_not_an_event_object_is_400_invalid_event(api, body):
    response = api.request("POST", "/v2/enqueue", body=body, key=None)
    assert response.status_code == 400
    assert response.json_body["status"] == "invalid event"


@pytest.mark.parametrize("name, changes, field", [
    ("trigger", {"dedup_key": "disk-\ud800"}, "dedup_key"),
    ("acknowledge", {"dedup_key": "\udc00"}, "dedup_key"),
    ("resolve", {"dedup_key": "disk-full\ud83d"}, "dedup_key"),
    ("trigger", {"payload_summary": "Disk \ud800 full"}, "payload.summary"),
    ("trigger", {"payload_source": "host-\udfff"}, "payload.source"),
    ("resolve", {"payload": {"source": "\ud800"}}, "payload.source"),
], ids=["trigger dedup_key", "acknowledge dedup_key", "resolve dedup_key", "summary", "source",
        "resolve source"])
def test_an_unpaired_surrogate_in_any_text_the_event_brings_is_a_400_invalid_event(api, name, changes, field):
    send(api, event("trigger"))
    response = send(api, event(name, **changes))
    assert response.status_code == 400
    assert response.json_body == {
        **INVALID, "errors": [f"'{field}' contains an unpaired surrogate; send valid Unicode text"]}
    [untouched] = incidents(api)
    assert (untouched["status"], untouched["occurrences"]) == ("new", 1)


def test_who_did_it_is_stored_on_one_line_whatever_lines_payload_source_holds(api):
    send(api, event("trigger", payload_source="db-1\n#7 resolved: alarm recovered\r\n"))
    send(api, event("resolve", payload={"source": "ops\u2028bot\n"}))
    [incident] = incidents(api)
    assert [entry["by"] for entry in incident["history"]] == [
        "pagerduty:db-1 #7 resolved: alarm recovered", "pagerduty:ops bot"]


def test_half_a_mebibyte_of_unterminated_quotes_without_a_key_is_a_400_invalid_event_at_once(api):
    from chalicelib import payloads

    body = ('{"routing_key": "x", "a": ' + '"\\' * 300_000)[: 512 * 1024]
    # Linear (tests/test_payloads.py): a few characters read per character sent.
    assert payloads.check_json_limits(body, "body") <= 11 * len(body)
    response = api.request("POST", "/v2/enqueue", body=body, key=None)
    assert response.status_code == 400
    assert response.json_body["errors"][0].startswith("request body is not valid JSON: Unterminated string")


def test_a_hand_off_that_fails_is_503_with_retry_after_so_the_sender_retries(api, monkeypatch):
    from chalicelib.intake import Intake

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("the hand-off failed: SQS did not answer")

    monkeypatch.setattr(Intake, "hand_off", unavailable)
    response = send(api, event("trigger"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_a_store_failure_after_the_202_is_retried_by_the_queue_and_opens_one_incident(api, monkeypatch):
    accepted = api.post("/v2/enqueue", event("trigger"), key=None)
    assert accepted.status_code == 202
    with monkeypatch.context() as patch:
        patch.setattr(Store, "insert_incident", lambda *args, **kwargs: (_ for _ in ()).throw(
            Unavailable("throttled past the retries")))
        with pytest.raises(Unavailable):
            drain_intake()
    assert incidents(api) == []
    drain_intake()  # delivered again
    [incident] = incidents(api)
    assert incident["dedup_key"] == f"pagerduty:{DEDUP}" and incident["occurrences"] == 1


def test_the_routing_key_is_not_in_what_is_handed_off(api):
    import boto3

    assert api.post("/v2/enqueue", event("trigger"), key=None).status_code == 202
    sqs = boto3.client("sqs")
    [message] = sqs.receive_message(QueueUrl=os.environ["INTAKE_QUEUE_URL"])["Messages"]
    assert ROUTING_KEY not in message["Body"]


def test_in_lambda_the_integration_keys_come_from_the_stages_ssm_parameter(api, monkeypatch):
    import boto3

    from chalicelib import secrets

    monkeypatch.delenv("INTEGRATION_KEYS")
    monkeypatch.setenv("INTEGRATION_KEYS_PARAMETER", "/incidents/dev/integration-keys")
    boto3.client("ssm").put_parameter(Name="/incidents/dev/integration-keys", Type="SecureString",
                                      Value=f"{ROUTING_KEY},{OTHER_ROUTING_KEY}")
    secrets.clear_cache()
    try:
        assert send(api, event("trigger", routing_key=OTHER_ROUTING_KEY)).status_code == 202
        assert send(api, event("trigger", routing_key="wrong")).status_code == 400
    finally:
        secrets.clear_cache()


def test_a_keys_events_share_one_fifo_group_so_a_resolve_is_never_applied_before_its_trigger(api):
    import boto3

    for body in (event("trigger"), event("resolve"), event("trigger", dedup_key="another-key")):
        assert api.post("/v2/enqueue", body, key=None).status_code == 202
    messages = boto3.client("sqs").receive_message(
        QueueUrl=os.environ["INTAKE_QUEUE_URL"], MaxNumberOfMessages=10,
        MessageSystemAttributeNames=["MessageGroupId"])["Messages"]
    groups = [message["Attributes"]["MessageGroupId"] for message in messages]
    assert len(groups) == 3 and groups[0] == groups[1] != groups[2]


def test_without_the_intake_configured_an_event_is_503_not_a_500(api, monkeypatch):
    from chalicelib.intake import default_intake

    monkeypatch.delenv("INTAKE_QUEUE_URL")
    default_intake.cache_clear()
    response = api.post("/v2/enqueue", event("trigger"), key=None)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
