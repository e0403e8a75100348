import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.alarms import (
    MAX_DESCRIPTION,
    AlarmChange,
    MalformedAlarm,
    PlainMessage,
    parse_eventbridge_event,
    parse_sns_message,
    recovery_note,
)

PAYLOADS = Path(__file__).parent / "payloads"
ALARM_ARN = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:scooter-42-offline"


def load(name: str) -> dict[str, Any]:
    with open(PAYLOADS / name, encoding="utf-8") as f:
        return json.load(f)


def sns(name: str) -> tuple[str | None, str]:
    message = load(name)["Records"][0]["Sns"]
    return message["Subject"], message["Message"]


def alarm_json(name: str = "sns_alarm_record.json") -> dict[str, Any]:
    return json.loads(sns(name)[1])


def parse_alarm_json(payload: Any, subject: str | None = "ALARM: x") -> AlarmChange | PlainMessage:
    return parse_sns_message(subject, json.dumps(payload))


# SNS: CloudWatch alarm notifications

def test_alarm_notification_from_sns_is_an_alarm_change_keyed_by_the_alarm_arn():
    change = parse_sns_message(*sns("sns_alarm_record.json"))

    assert isinstance(change, AlarmChange)
    assert change.state == "ALARM"
    assert change.alarm_name == "scooter-42-offline"
    assert change.dedup_key == ALARM_ARN


def test_incident_text_gives_the_alarm_name_its_description_and_the_reason():
    change = parse_sns_message(*sns("sns_alarm_record.json"))

    lines = change.description.split("\n")
    assert lines[0] == "scooter-42-offline"
    assert lines[1] == "Самокат #42 не в сети: no heartbeat for 5 minutes"
    assert lines[2].startswith("Threshold Crossed: 5 out of the last 5 datapoints")
    assert change.reason == lines[2]


def test_recovered_alarm_from_sns_carries_ok_and_why_it_recovered():
    change = parse_sns_message(*sns("sns_ok_record.json"))

    assert change.state == "OK"
    assert change.dedup_key == ALARM_ARN
    assert "was not greater than the threshold (300.0)" in change.reason


def test_insufficient_data_from_sns_is_reported_as_that_state_for_the_same_alarm():
    change = parse_sns_message(*sns("sns_insufficient_record.json"))

    assert change.state == "INSUFFICIENT_DATA"
    assert change.dedup_key == ALARM_ARN
    assert change.reason == "Insufficient Data: 5 datapoints were unknown."


def test_alarm_without_arn_gets_a_stable_key_from_account_region_and_name():
    payload = alarm_json()
    del payload["AlarmArn"]

    first, again = parse_alarm_json(payload), parse_alarm_json(payload)

    # SNS names the region for display, and that text is kept as it is
    assert first.dedup_key == "arn:aws:cloudwatch:EU (Ireland):123456789012:alarm:scooter-42-offline"
    assert again.dedup_key == first.dedup_key


def test_alarm_with_null_description_leaves_it_out_of_the_incident_text():
    payload = alarm_json()
    payload["AlarmDescription"] = None

    change = parse_alarm_json(payload)

    assert change.description == f"scooter-42-offline\n{payload['NewStateReason']}"
    assert "None" not in change.description


def test_alarm_with_only_a_name_still_has_a_description():
    payload = {"AlarmName": "  scooter-42-offline  ", "NewStateValue": "ALARM", "NewStateReason": "   "}

    change = parse_alarm_json(payload)

    assert change.description == "scooter-42-offline"
    assert change.reason == ""


def test_long_alarm_text_is_cut_to_the_description_limit_with_a_visible_ellipsis():
    payload = alarm_json()
    payload["AlarmDescription"] = "Самокат " * 1000

    change = parse_alarm_json(payload)

    assert len(change.description) == MAX_DESCRIPTION
    assert change.description.endswith("…")
    assert change.description.startswith("scooter-42-offline\nСамокат")


def test_lone_surrogates_in_an_alarm_are_replaced_so_the_text_can_be_stored():
    message = sns("sns_alarm_record.json")[1].replace("Самокат", "\\ud800Самокат\\udfff")

    change = parse_sns_message("ALARM", message)

    change.description.encode("utf-8")
    assert "\ufffdСамокат\ufffd" in change.description


def test_escaped_surrogate_pairs_become_the_character_they_spell():
    payload = alarm_json()
    message = json.dumps(payload, ensure_ascii=False).replace("Самокат", "\\ud83d\\udef4 Самокат")

    change = parse_sns_message("ALARM", message)

    assert "🛴 Самокат" in change.description


def test_very_long_alarm_arns_get_keys_within_the_limit_that_stay_distinct():
    prefix = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:"
    first, second = alarm_json(), alarm_json()
    first["AlarmArn"] = prefix + "a" * 250 + "1"
    second["AlarmArn"] = prefix + "a" * 250 + "2"

    first_key = parse_alarm_json(first).dedup_key
    second_key = parse_alarm_json(second).dedup_key

    assert len(first_key) <= 256 and len(second_key) <= 256
    assert first_key != second_key
    assert first_key == parse_alarm_json(first).dedup_key


# SNS: anything else becomes a plain message

def test_plain_text_sns_message_becomes_an_incident_text_from_subject_and_body():
    result = parse_sns_message(*sns("sns_plain_text_record.json"))

    assert isinstance(result, PlainMessage)
    assert result.description.startswith("Depot B power outage\n\nDepot B lost mains power at 10:20 UTC.")
    assert result.description.endswith("-- Ivan, night shift")


def test_json_that_is_not_an_alarm_is_kept_verbatim_as_a_plain_message():
    subject, message = sns("sns_other_json_record.json")

    result = parse_sns_message(subject, message)

    assert subject is None
    assert result == PlainMessage(description=message)


@pytest.mark.parametrize("message", ['["ALARM"]', '"ALARM"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_a_plain_message(message):
    assert parse_sns_message("Subject", message) == PlainMessage(description=f"Subject\n\n{message}")


@pytest.mark.parametrize("missing", ["AlarmName", "NewStateValue"])
def test_alarm_json_without_name_or_state_is_a_plain_message(missing):
    payload = alarm_json()
    del payload[missing]

    assert isinstance(parse_alarm_json(payload), PlainMessage)


@pytest.mark.parametrize("field, value", [
    ("NewStateValue", "BROKEN"),
    ("NewStateValue", None),
    ("AlarmName", ""),
    ("AlarmName", 42),
])
def test_alarm_json_with_an_unusable_name_or_state_is_a_plain_message(field, value):
    payload = alarm_json()
    payload[field] = value

    result = parse_alarm_json(payload)

    assert isinstance(result, PlainMessage)
    assert "scooter-42" in result.description


@pytest.mark.parametrize("subject, message", [("", ""), (None, "  \n\t "), ("   ", "")])
def test_blank_sns_message_still_makes_a_description(subject, message):
    assert parse_sns_message(subject, message) == PlainMessage(description="(empty SNS message)")


def test_sns_message_without_subject_uses_the_body_alone():
    assert parse_sns_message(None, "  Depot B is dark  ") == PlainMessage(description="Depot B is dark")


def test_long_plain_message_is_cut_to_the_description_limit():
    result = parse_sns_message("Flood", "x" * 10_000)

    assert len(result.description) == MAX_DESCRIPTION
    assert result.description.startswith("Flood\n\nxxx")


@pytest.mark.parametrize("message", [
    "[" * 100_000,
    '{"AlarmName": ',
    "\ud800 lone surrogate",
    '"\\ud800"',
    "1" * 5000,
    '{"NewStateValue": "ALARM", "AlarmName": {"nested": true}}',
    None,
])
def test_parsing_an_sns_message_never_raises(message):
    result = parse_sns_message("\udfff subject", message)

    assert isinstance(result, PlainMessage)
    assert 0 < len(result.description) <= MAX_DESCRIPTION
    result.description.encode("utf-8")


# EventBridge

def test_eventbridge_alarm_is_an_alarm_change_keyed_by_the_alarm_arn():
    change = parse_eventbridge_event(load("eventbridge_alarm.json"))

    assert change.state == "ALARM"
    assert change.alarm_name == "scooter-42-offline"
    assert change.dedup_key == ALARM_ARN
    assert change.reason.startswith("Threshold Crossed: 5 out of the last 5 datapoints")


def test_sns_and_eventbridge_report_the_same_alarm_alike():
    via_sns = parse_sns_message(*sns("sns_alarm_record.json"))
    via_eventbridge = parse_eventbridge_event(load("eventbridge_alarm.json"))

    assert via_eventbridge == via_sns


@pytest.mark.parametrize("name, state", [
    ("eventbridge_ok.json", "OK"),
    ("eventbridge_insufficient.json", "INSUFFICIENT_DATA"),
])
def test_eventbridge_reports_the_new_state_not_the_previous_one(name, state):
    change = parse_eventbridge_event(load(name))

    assert change.state == state
    assert change.dedup_key == ALARM_ARN


def test_eventbridge_alarm_without_description_names_the_alarm_and_reason():
    event = load("eventbridge_alarm.json")
    del event["detail"]["configuration"]["description"]

    change = parse_eventbridge_event(event)

    assert change.description == f"scooter-42-offline\n{change.reason}"


def test_eventbridge_alarm_without_resources_gets_a_key_from_account_region_and_name():
    event = load("eventbridge_alarm.json")
    event["resources"] = []

    assert parse_eventbridge_event(event).dedup_key == ALARM_ARN


def without(path: tuple[str, ...]) -> dict[str, Any]:
    event = copy.deepcopy(load("eventbridge_alarm.json"))
    holder = event
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return event


def replaced(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    event = without(path)
    holder = event
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return event


@pytest.mark.parametrize("event", [
    without(("detail", "alarmName")),
    without(("detail", "state")),
    without(("detail", "state", "value")),
    without(("detail",)),
    replaced(("detail", "alarmName"), "   "),
    replaced(("detail", "alarmName"), None),
    replaced(("detail", "state"), "ALARM"),
    replaced(("detail", "state", "value"), "alarm"),
    replaced(("detail",), []),
    replaced(("detail-type",), "CloudWatch Alarm Configuration Change"),
    replaced(("resources",), None) | {"account": None},
    [],
    None,
], ids=[
    "no alarm name", "no state", "no state value", "no detail",
    "blank alarm name", "null alarm name", "state not an object", "unknown state value",
    "detail not an object", "other detail-type", "no arn and no account",
    "event is a list", "event is null",
])
def test_eventbridge_event_lacking_what_an_incident_needs_is_malformed(event):
    with pytest.raises(MalformedAlarm):
        parse_eventbridge_event(event)


def test_malformed_alarm_is_a_value_error_so_generic_handlers_catch_it():
    with pytest.raises(ValueError, match="alarmName"):
        parse_eventbridge_event(without(("detail", "alarmName")))


# Recovery note

def test_recovery_note_says_the_alarm_recovered_and_why():
    change = parse_sns_message(*sns("sns_ok_record.json"))

    assert recovery_note(change) == f"Alarm recovered: {change.reason}"


def test_recovery_note_without_a_reason_still_says_it_recovered():
    change = parse_alarm_json({"AlarmName": "scooter-42-offline", "NewStateValue": "OK"})

    assert recovery_note(change) == "Alarm recovered."


def test_recovery_note_fits_the_note_limit():
    event = replaced(("detail", "state", "reason"), "Recovered " * 500)
    event["detail"]["state"]["value"] = "OK"

    note = recovery_note(parse_eventbridge_event(event))

    assert len(note) == 1000
    assert note.startswith("Alarm recovered: Recovered")
    assert note.endswith("…")


# Fixtures

def test_each_fixture_is_a_distinct_delivery():
    ids = []
    for path in sorted(PAYLOADS.glob("*.json")):
        payload = load(path.name)
        ids.append(payload["Records"][0]["Sns"]["MessageId"] if "Records" in payload else payload["id"])

    assert len(ids) == 8
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("message", [
    "[" * 10_000 + "]" * 10_000,
    '{"AlarmName": "x", "NewStateValue": "ALARM", "a": ' + "[" * 40 + "]" * 40 + "}",
    '{"AlarmName": "x", "NewStateValue": "ALARM", "n": ' + "9" * 5_000 + "}",
])
def test_an_sns_message_past_the_json_limits_becomes_a_plain_incident_not_an_error(message):
    parsed = parse_sns_message("Subject", message)
    assert isinstance(parsed, PlainMessage)
    assert parsed.description.startswith("Subject")
