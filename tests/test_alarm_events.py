"""CloudWatch alarms through SNS and EventBridge, driven with the real payload files."""
from __future__ import annotations

import copy
import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from app import on_alarm_notification, on_alarm_state_change
from chalicelib.incidents import Unavailable
from chalicelib.store import Store

PAYLOADS = Path(__file__).parent / "payloads"
ALARM_ARN = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:scooter-42-offline"
SNS = "on_alarm_notification"
EVENTBRIDGE = "on_alarm_state_change"
THREADS = 8


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


# Later state changes of the fixtures' alarm (the fixtures: ALARM 10:15:30, OK 10:42:05).
FIRED_AGAIN_AT = "2026-11-23T10:50:00.000+0000"
FIRED_LATER_AT = "2026-11-23T11:20:00.000+0000"


def sns(name: str, message_id: str | None = None, at: str | None = None) -> dict[str, Any]:
    """An SNS delivery from a fixture; a new MessageId makes it another notification, not a
    redelivery; `at` is the alarm's StateChangeTime (a later state change of the same alarm)."""
    event = payload(name)
    if message_id is not None:
        event["Records"][0]["Sns"]["MessageId"] = message_id
    if at is not None:
        message = json.loads(event["Records"][0]["Sns"]["Message"])
        message["StateChangeTime"] = at
        event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    return event


def eventbridge(name: str, event_id: str | None = None, at: str | None = None) -> dict[str, Any]:
    event = payload(name)
    if event_id is not None:
        event["id"] = event_id
    if at is not None:
        event["detail"]["state"]["timestamp"] = at
    return event


def sns_record(name: str, message_id: str | None = None, at: str | None = None) -> dict[str, Any]:
    return sns(name, message_id, at)["Records"][0]


def sns_message(name: str) -> dict[str, Any]:
    return json.loads(sns_record(name)["Sns"]["Message"])


def incidents(api: Any) -> list[dict[str, Any]]:
    """Every incident, newest first, each as GET /incidents/{id} shows it (with its history)."""
    response = api.get("/incidents")
    assert response.status_code == 200, response.body
    return [incident(api, item["id"]) for item in response.json_body["items"]]


def incident(api: Any, incident_id: int) -> dict[str, Any]:
    response = api.get(f"/incidents/{incident_id}")
    assert response.status_code == 200, response.body
    return response.json_body


def in_parallel(call: Callable[[], Any], count: int = THREADS) -> list[BaseException]:
    """Runs `call` from `count` threads released at once; returns what they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            call()
        except BaseException as error:  # collected and asserted on by the test
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# SNS: ALARM, OK, INSUFFICIENT_DATA

def test_an_alarm_opens_a_monitoring_incident_named_after_the_alarm_with_its_reason(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))

    opened = incident(api, 1)
    alarm = sns_message("sns_alarm_record.json")
    assert opened["status"] == "new"
    assert opened["source"] == "monitoring"
    assert opened["dedup_key"] == ALARM_ARN
    assert opened["occurrences"] == 1
    assert opened["description"] == "\n".join(
        [alarm["AlarmName"], alarm["AlarmDescription"], alarm["NewStateReason"]]
    )
    assert [(h["status"], h["by"], h["note"]) for h in opened["history"]] == [("new", "cloudwatch", None)]


def test_the_same_alarm_firing_again_counts_an_occurrence_instead_of_opening_another_incident(
    client, api
):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json", message_id="second-notification",
                                   at=FIRED_AGAIN_AT))

    [only] = incidents(api)
    assert only["id"] == 1
    assert only["occurrences"] == 2
    assert len(only["history"]) == 1


def test_a_recovered_alarm_resolves_its_incident_with_a_note_saying_why(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    resolved = incident(api, 1)
    reason = sns_message("sns_ok_record.json")["NewStateReason"]
    assert resolved["status"] == "resolved"
    assert resolved["history"][-1]["by"] == "cloudwatch"
    assert resolved["history"][-1]["status"] == "resolved"
    assert resolved["history"][-1]["note"] == f"Alarm recovered: {reason}"


def test_an_operator_working_on_the_incident_still_sees_it_resolved_when_the_alarm_recovers(
    client, api
):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    api.patch("/incidents/1", {"status": "in_progress", "note": "on my way"})

    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    assert [h["status"] for h in incident(api, 1)["history"]] == ["new", "in_progress", "resolved"]


def test_an_alarm_after_recovery_opens_a_new_incident(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json", message_id="fired-again", at=FIRED_AGAIN_AT))

    newest, first = incidents(api)
    assert (first["id"], first["status"]) == (1, "resolved")
    assert (newest["id"], newest["status"], newest["occurrences"]) == (2, "new", 1)
    assert newest["dedup_key"] == ALARM_ARN


def test_a_recovery_with_no_open_incident_for_that_alarm_changes_nothing(client, api):
    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    assert incidents(api) == []


def test_an_operator_closing_the_incident_first_means_the_recovery_changes_nothing(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    closed = api.patch("/incidents/1", {"status": "closed", "note": "false alarm"}).json_body

    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    assert incident(api, 1) == closed


def test_an_operator_resolving_the_incident_first_means_the_recovery_adds_nothing(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    resolved = api.patch("/incidents/1", {"status": "resolved"}).json_body

    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    assert incident(api, 1) == resolved


def test_insufficient_data_leaves_the_open_incident_as_it_was(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    before = incident(api, 1)

    client.lambda_.invoke(SNS, sns("sns_insufficient_record.json"))

    assert incident(api, 1) == before


def test_insufficient_data_alone_opens_no_incident(client, api):
    client.lambda_.invoke(SNS, sns("sns_insufficient_record.json"))

    assert incidents(api) == []


# SNS: redelivery

def test_a_redelivered_alarm_opens_nothing_and_counts_nothing(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))

    [only] = incidents(api)
    assert only["occurrences"] == 1
    assert len(only["history"]) == 1


def test_a_redelivered_repeat_alarm_counts_its_occurrence_once(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    repeat = sns("sns_alarm_record.json", message_id="second-notification", at=FIRED_AGAIN_AT)
    client.lambda_.invoke(SNS, repeat)
    client.lambda_.invoke(SNS, repeat)

    assert incident(api, 1)["occurrences"] == 2


def test_a_redelivered_recovery_adds_no_second_history_entry(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))
    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    assert [h["status"] for h in incident(api, 1)["history"]] == ["new", "resolved"]


def test_a_late_redelivered_recovery_does_not_resolve_the_alarms_next_incident(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json", message_id="fired-again", at=FIRED_AGAIN_AT))

    client.lambda_.invoke(SNS, sns("sns_ok_record.json"))

    assert incident(api, 2)["status"] == "new"
    assert len(incident(api, 2)["history"]) == 1


def test_concurrent_redeliveries_of_an_alarm_open_exactly_one_incident_once(store, api):
    delivery = sns("sns_alarm_record.json")

    errors = in_parallel(lambda: on_alarm_notification(copy.deepcopy(delivery), None))

    assert errors == []
    [only] = incidents(api)
    assert only["occurrences"] == 1
    assert len(only["history"]) == 1


def test_concurrent_redeliveries_of_a_repeat_alarm_count_one_occurrence(store, api):
    on_alarm_notification(sns("sns_alarm_record.json"), None)
    repeat = sns("sns_alarm_record.json", message_id="second-notification", at=FIRED_AGAIN_AT)

    errors = in_parallel(lambda: on_alarm_notification(copy.deepcopy(repeat), None))

    assert errors == []
    [only] = incidents(api)
    assert only["occurrences"] == 2


def test_concurrent_redeliveries_of_a_recovery_resolve_once(store, api):
    on_alarm_notification(sns("sns_alarm_record.json"), None)
    recovery = sns("sns_ok_record.json")

    errors = in_parallel(lambda: on_alarm_notification(copy.deepcopy(recovery), None))

    assert errors == []
    assert [h["status"] for h in incident(api, 1)["history"]] == ["new", "resolved"]


def competing_before_the_recovery_is_recorded(store: Store, monkeypatch: Any,
                                                compete: Callable[[], Any]) -> None:
    """Runs `compete` once, between the recovery's reads and its write of "nothing open"."""
    record = store.mark_alarm
    pending = [compete]

    def mark_alarm(*args: Any, **kwargs: Any) -> Any:
        while pending:
            pending.pop()()
        return record(*args, **kwargs)

    monkeypatch.setattr(store, "mark_alarm", mark_alarm)


BETWEEN_ALARM_AND_RECOVERY = "2026-11-23T10:30:00.000+0000"


def test_an_earlier_alarm_opening_the_incident_while_its_recovery_finds_nothing_open_is_resolved(
    store, api, monkeypatch
):
    # The ALARM (the other channel, or a retry) lands after the OK read "nothing open".
    competing_before_the_recovery_is_recorded(
        store, monkeypatch, lambda: on_alarm_state_change(eventbridge("eventbridge_alarm.json"), None))

    on_alarm_notification(sns("sns_ok_record.json"), None)

    [opened] = incidents(api)
    assert [h["status"] for h in opened["history"]] == ["new", "resolved"]


def test_a_successor_opening_while_the_recovery_reads_the_previous_incident_resolved_is_resolved(
    store, api, monkeypatch
):
    on_alarm_notification(sns("sns_alarm_record.json"), None)
    api.patch("/incidents/1", {"status": "resolved"})
    competing_before_the_recovery_is_recorded(
        store, monkeypatch, lambda: on_alarm_notification(
            sns("sns_alarm_record.json", message_id="fired-between", at=BETWEEN_ALARM_AND_RECOVERY), None))

    on_alarm_notification(sns("sns_ok_record.json"), None)

    successor, first = incidents(api)
    assert (first["id"], first["status"], len(first["history"])) == (1, "resolved", 2)
    assert successor["id"] == 2
    assert [h["status"] for h in successor["history"]] == ["new", "resolved"]


# SNS: messages that are not alarm notifications

def test_a_plain_text_message_to_the_topic_becomes_an_incident_from_subject_and_text(client, api):
    client.lambda_.invoke(SNS, sns("sns_plain_text_record.json"))

    [created] = incidents(api)
    message = sns_record("sns_plain_text_record.json")["Sns"]
    assert created["description"] == f"{message['Subject']}\n\n{message['Message'].strip()}"
    assert created["source"] == "monitoring"
    assert created["dedup_key"] is None
    assert created["history"][0]["by"] == "cloudwatch"


def test_other_json_sent_to_the_topic_is_kept_verbatim_as_an_incident(client, api):
    client.lambda_.invoke(SNS, sns("sns_other_json_record.json"))

    [created] = incidents(api)
    assert created["description"] == sns_record("sns_other_json_record.json")["Sns"]["Message"]


def test_a_redelivered_plain_message_makes_one_incident(client, api):
    client.lambda_.invoke(SNS, sns("sns_plain_text_record.json"))
    client.lambda_.invoke(SNS, sns("sns_plain_text_record.json"))

    assert len(incidents(api)) == 1


def test_every_record_of_a_delivery_is_handled(client, api):
    delivery = {"Records": [sns_record("sns_alarm_record.json"), sns_record("sns_plain_text_record.json")]}

    client.lambda_.invoke(SNS, delivery)

    assert sorted(i["dedup_key"] or "plain" for i in incidents(api)) == [ALARM_ARN, "plain"]


# Malformed input

def test_malformed_records_are_logged_and_skipped_while_the_good_ones_are_stored(client, api, caplog):
    without_id = sns_record("sns_alarm_record.json")
    del without_id["Sns"]["MessageId"]
    delivery = {"Records": [
        without_id,
        {"EventSource": "aws:sns"},
        sns_record("sns_plain_text_record.json"),
        "not a record",
        sns_record("sns_alarm_record.json"),
    ]}

    with caplog.at_level(logging.WARNING):
        client.lambda_.invoke(SNS, delivery)

    stored = incidents(api)
    assert len(stored) == 2
    assert {i["dedup_key"] for i in stored} == {ALARM_ARN, None}
    skipped = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(skipped) == 3
    assert "Sns.MessageId is missing" in skipped[0].getMessage()


def test_an_eventbridge_event_without_an_alarm_name_is_logged_and_dropped(client, api, caplog):
    event = payload("eventbridge_alarm.json")
    del event["detail"]["alarmName"]

    with caplog.at_level(logging.WARNING):
        client.lambda_.invoke(EVENTBRIDGE, event)

    assert incidents(api) == []
    assert any("alarmName" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


# Storage failures

def test_a_store_failure_raises_so_lambda_retries_and_the_retry_stores_the_alarm(
    client, api, monkeypatch
):
    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("throttled past the retries")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "insert_incident", unavailable)
        with pytest.raises(Unavailable):
            client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    assert incidents(api) == []

    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))  # Lambda's retry

    [stored] = incidents(api)
    assert stored["dedup_key"] == ALARM_ARN


@pytest.mark.parametrize("code", ["ThrottlingException", "AccessDeniedException"])
def test_a_dynamodb_error_raises_from_the_handler_and_writes_nothing(client, api, store, code):
    stubber = Stubber(store._client)
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=400)

    with stubber, pytest.raises((Unavailable, ClientError)):
        client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))

    assert incidents(api) == []


def test_a_store_failure_on_one_record_still_stores_the_others_then_raises(client, api, monkeypatch):
    original = Store.insert_incident
    calls = []

    def fails_first_time(self: Store, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise Unavailable("throttled past the retries")
        original(self, *args, **kwargs)

    delivery = {"Records": [sns_record("sns_alarm_record.json"), sns_record("sns_plain_text_record.json")]}
    with monkeypatch.context() as patch:
        patch.setattr(Store, "insert_incident", fails_first_time)
        with pytest.raises(Unavailable):
            client.lambda_.invoke(SNS, delivery)
        assert [i["dedup_key"] for i in incidents(api)] == [None]

    client.lambda_.invoke(SNS, delivery)  # Lambda's retry: the plain message is not stored twice

    assert sorted(i["dedup_key"] or "plain" for i in incidents(api)) == [ALARM_ARN, "plain"]


def test_an_eventbridge_store_failure_raises_so_lambda_retries(client, api, monkeypatch):
    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise Unavailable("throttled past the retries")

    monkeypatch.setattr(Store, "allocate_id", unavailable)

    with pytest.raises(Unavailable):
        client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_alarm.json"))


# EventBridge

def test_an_eventbridge_alarm_opens_the_same_incident_an_sns_alarm_would(client, api):
    client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_alarm.json"))

    opened = incident(api, 1)
    alarm = sns_message("sns_alarm_record.json")
    assert (opened["status"], opened["source"], opened["dedup_key"]) == ("new", "monitoring", ALARM_ARN)
    assert opened["description"] == "\n".join(
        [alarm["AlarmName"], alarm["AlarmDescription"], alarm["NewStateReason"]]
    )
    assert opened["history"][0]["by"] == "cloudwatch"


def test_an_eventbridge_recovery_resolves_the_incident_with_the_reason(client, api):
    client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_alarm.json"))
    client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_ok.json"))

    resolved = incident(api, 1)
    reason = payload("eventbridge_ok.json")["detail"]["state"]["reason"]
    assert resolved["status"] == "resolved"
    assert resolved["history"][-1]["note"] == f"Alarm recovered: {reason}"


def test_a_redelivered_eventbridge_event_changes_nothing(client, api):
    for _ in range(2):
        client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_alarm.json"))
    for _ in range(2):
        client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_ok.json"))

    [only] = incidents(api)
    assert only["occurrences"] == 1
    assert [h["status"] for h in only["history"]] == ["new", "resolved"]


def test_concurrent_redeliveries_of_an_eventbridge_alarm_open_one_incident_once(store, api):
    event = payload("eventbridge_alarm.json")

    errors = in_parallel(lambda: on_alarm_state_change(copy.deepcopy(event), None))

    assert errors == []
    [only] = incidents(api)
    assert only["occurrences"] == 1


def test_eventbridge_insufficient_data_changes_nothing(client, api):
    client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_alarm.json"))
    before = incident(api, 1)

    client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_insufficient.json"))

    assert incidents(api) == [before]


def test_one_state_change_reported_by_both_sns_and_eventbridge_counts_once(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(EVENTBRIDGE, payload("eventbridge_alarm.json"))  # same StateChangeTime

    [only] = incidents(api)
    assert only["occurrences"] == 1


def test_a_later_firing_reported_through_eventbridge_counts_on_the_sns_incident(client, api):
    client.lambda_.invoke(SNS, sns("sns_alarm_record.json"))
    client.lambda_.invoke(EVENTBRIDGE, eventbridge("eventbridge_alarm.json", "fired-again", FIRED_AGAIN_AT))

    [only] = incidents(api)
    assert only["occurrences"] == 2


# Out of order: Lambda retries and SNS redeliveries arrive late

SNS_ORDER = [("ALARM", "sns_alarm_record.json"), ("OK", "sns_ok_record.json")]


def deliver(client: Any, handler: str, state: str, at: str, event_id: str) -> None:
    if handler == SNS:
        name = "sns_alarm_record.json" if state == "ALARM" else "sns_ok_record.json"
        client.lambda_.invoke(SNS, sns(name, message_id=event_id, at=at))
    else:
        name = "eventbridge_alarm.json" if state == "ALARM" else "eventbridge_ok.json"
        client.lambda_.invoke(EVENTBRIDGE, eventbridge(name, event_id, at))


@pytest.mark.parametrize("handler", [SNS, EVENTBRIDGE])
def test_an_alarm_older_than_the_recovery_already_applied_opens_nothing(client, api, handler):
    deliver(client, handler, "OK", "2026-11-23T10:20:00.000+0000", "ok-1020")
    deliver(client, handler, "ALARM", "2026-11-23T10:15:00.000+0000", "alarm-1015")

    assert incidents(api) == []


@pytest.mark.parametrize("handler", [SNS, EVENTBRIDGE])
def test_a_late_recovery_older_than_the_latest_alarm_leaves_the_incident_open(client, api, handler):
    deliver(client, handler, "ALARM", "2026-11-23T10:00:00.000+0000", "alarm-1000")
    deliver(client, handler, "ALARM", "2026-11-23T10:10:00.000+0000", "alarm-1010")
    deliver(client, handler, "OK", "2026-11-23T10:05:00.000+0000", "ok-1005")

    [only] = incidents(api)
    assert (only["status"], only["occurrences"]) == ("new", 2)
    assert [h["status"] for h in only["history"]] == ["new"]


@pytest.mark.parametrize("handler", [SNS, EVENTBRIDGE])
def test_a_redelivered_older_alarm_after_a_newer_recovery_changes_nothing(client, api, handler):
    deliver(client, handler, "ALARM", "2026-11-23T10:00:00.000+0000", "alarm-1000")
    deliver(client, handler, "OK", "2026-11-23T10:20:00.000+0000", "ok-1020")
    deliver(client, handler, "ALARM", "2026-11-23T10:00:00.000+0000", "alarm-1000")  # redelivery

    [only] = incidents(api)
    assert only["status"] == "resolved"


def test_events_mixed_across_sns_and_eventbridge_are_ordered_by_their_state_time(client, api):
    deliver(client, EVENTBRIDGE, "ALARM", "2026-11-23T10:00:00.000+0000", "eb-alarm")
    deliver(client, SNS, "OK", "2026-11-23T10:30:00.000+0000", "sns-ok")
    deliver(client, EVENTBRIDGE, "OK", "2026-11-23T10:30:00.000+0000", "eb-ok")
    deliver(client, SNS, "ALARM", "2026-11-23T10:10:00.000+0000", "sns-late-alarm")

    [only] = incidents(api)
    assert only["status"] == "resolved"
    assert [h["status"] for h in only["history"]] == ["new", "resolved"]


def test_an_operator_resolving_first_does_not_let_a_late_alarm_reopen_anything(client, api):
    deliver(client, SNS, "ALARM", "2026-11-23T10:00:00.000+0000", "alarm-1000")
    api.patch("/incidents/1", {"status": "resolved"})
    deliver(client, SNS, "OK", "2026-11-23T10:20:00.000+0000", "ok-1020")  # nothing left to resolve
    deliver(client, SNS, "ALARM", "2026-11-23T10:05:00.000+0000", "alarm-1005")  # late

    [only] = incidents(api)
    assert only["status"] == "resolved"


def test_a_stale_event_is_logged(client, caplog):
    deliver(client, SNS, "OK", "2026-11-23T10:20:00.000+0000", "ok-1020")
    with caplog.at_level(logging.INFO):
        deliver(client, SNS, "ALARM", "2026-11-23T10:15:00.000+0000", "alarm-1015")

    assert any("stale" in record.getMessage() for record in caplog.records)
