"""CloudWatch alarm notifications (SNS, EventBridge) -> plain values; pure. See docs/alarms.md."""
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib.incidents import MAX_DEDUP_KEY, MAX_DESCRIPTION, MAX_NOTE, InvalidInput
from chalicelib.payloads import check_json_limits

ALARM_STATES = frozenset({"ALARM", "OK", "INSUFFICIENT_DATA"})
STATE_CHANGE = "CloudWatch Alarm State Change"
EMPTY_SNS_MESSAGE = "(empty SNS message)"
ELLIPSIS = "…"


@dataclass(frozen=True)
class AlarmChange:
    dedup_key: str
    state: str
    alarm_name: str
    description: str
    reason: str
    # Orders one alarm's events; None: no time in the payload, arrival time stands in.
    changed_at: str | None


@dataclass(frozen=True)
class PlainMessage:
    description: str


class MalformedAlarm(ValueError):
    """An alarm event without the fields an incident needs."""


def parse_sns_message(
    subject: str | None, message: str, sent_at: str | None = None
) -> AlarmChange | PlainMessage:
    payload = _json_object(message)
    if payload is not None and _is_alarm_notification(payload):
        return _sns_alarm_change(payload, sent_at)
    return PlainMessage(description=_plain_description(subject, message))


def parse_eventbridge_event(event: dict[str, Any]) -> AlarmChange:
    if not isinstance(event, dict):
        raise MalformedAlarm("event is not an object")
    if event.get("detail-type") != STATE_CHANGE:
        raise MalformedAlarm(f"detail-type is {event.get('detail-type')!r}, expected {STATE_CHANGE!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedAlarm("detail is missing or not an object")
    name = _text(detail.get("alarmName"))
    if not name:
        raise MalformedAlarm("detail.alarmName is missing or empty")
    state = detail.get("state")
    value = state.get("value") if isinstance(state, dict) else None
    if value not in ALARM_STATES:
        raise MalformedAlarm(f"detail.state.value is {value!r}, expected one of {sorted(ALARM_STATES)}")
    configuration = detail.get("configuration")
    description = configuration.get("description") if isinstance(configuration, dict) else None
    return _alarm_change(
        dedup_key=_eventbridge_key(event, name),
        state=value,
        name=name,
        description=_text(description),
        reason=_text(state.get("reason")),
        changed_at=_moment(state.get("timestamp"), event.get("time")),
    )


def sns_record(record: Any) -> tuple[AlarmChange | PlainMessage, str]:
    """The parsed message, and the key that tells a redelivery of it."""
    sns = record.get("Sns") if isinstance(record, dict) else None
    if not isinstance(sns, dict):
        raise MalformedAlarm("record has no Sns object")
    message_id = _required(sns.get("MessageId"), "Sns.MessageId")
    parsed = parse_sns_message(sns.get("Subject"), sns.get("Message"), sns.get("Timestamp"))
    return parsed, f"sns#{message_id}"


def eventbridge_record(event: dict[str, Any]) -> tuple[AlarmChange, str]:
    return parse_eventbridge_event(event), f"eventbridge#{_required(event.get('id'), 'id')}"


def _required(value: Any, field: str) -> str:
    # Without an id a redelivery could not be told apart.
    if not isinstance(value, str) or not value.strip():
        raise MalformedAlarm(f"{field} is missing or empty")
    return value


def recovery_note(change: AlarmChange) -> str:
    if change.reason:
        return clip(f"Alarm recovered: {change.reason}", MAX_NOTE)
    return "Alarm recovered."


def one_line(text: str) -> str:
    """Every run of white space, line breaks included, as one space."""
    return " ".join(text.split())


def clip(text: str, limit: int) -> str:
    cleaned = _replace_lone_surrogates(text).strip()
    if len(cleaned) <= limit:
        return cleaned
    return cleaned[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _json_object(message: Any) -> dict[str, Any] | None:
    if not isinstance(message, str):
        return None
    try:
        check_json_limits(message, "SNS message")  # over the limits: plain text
        payload = json.loads(message)
    except (ValueError, RecursionError, InvalidInput):
        return None
    return payload if isinstance(payload, dict) else None


def _is_alarm_notification(payload: dict[str, Any]) -> bool:
    return bool(_text(payload.get("AlarmName"))) and payload.get("NewStateValue") in ALARM_STATES


def _moment(value: Any, fallback: Any) -> str | None:
    """UTC with milliseconds and Z, the form that compares correctly as text."""
    for candidate in (value, fallback):
        if isinstance(candidate, str):
            try:
                moment = datetime.fromisoformat(candidate.strip())
            except ValueError:
                continue
            if moment.tzinfo is not None:
                utc = moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
                return utc.replace("+00:00", "Z")
    return None


def _sns_alarm_change(payload: dict[str, Any], sent_at: str | None) -> AlarmChange:
    name = _text(payload.get("AlarmName"))
    arn = _text(payload.get("AlarmArn"))
    # Region is a display name ("EU (Ireland)"): this key matches only SNS notifications.
    key = arn or _derived_key(_text(payload.get("Region")), _text(payload.get("AWSAccountId")), name)
    return _alarm_change(
        dedup_key=key,
        state=payload["NewStateValue"],
        name=name,
        description=_text(payload.get("AlarmDescription")),
        reason=_text(payload.get("NewStateReason")),
        changed_at=_moment(payload.get("StateChangeTime"), sent_at),
    )


def _eventbridge_key(event: dict[str, Any], name: str) -> str:
    resources = event.get("resources")
    if isinstance(resources, list) and resources:
        arn = _text(resources[0])
        if arn:
            return arn
    region, account = _text(event.get("region")), _text(event.get("account"))
    if not (region and account):
        raise MalformedAlarm("no alarm ARN in resources, and no account and region to derive one")
    return _derived_key(region, account, name)


def _derived_key(region: str, account: str, name: str) -> str:
    return f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"


def _alarm_change(
    dedup_key: str, state: str, name: str, description: str, reason: str, changed_at: str | None
) -> AlarmChange:
    parts = (name, description, reason)
    return AlarmChange(
        dedup_key=_fit_key(_replace_lone_surrogates(dedup_key)),
        state=state,
        alarm_name=name,
        description=clip("\n".join(part for part in parts if part), MAX_DESCRIPTION),
        reason=reason,
        changed_at=changed_at,
    )


def _fit_key(key: str) -> str:
    # A digest of the whole key keeps cut keys distinct.
    if len(key) <= MAX_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return f"{key[: MAX_DEDUP_KEY - len(digest) - 1]}#{digest}"


def _plain_description(subject: Any, message: Any) -> str:
    parts = (_text(subject), _text(message))
    return clip("\n\n".join(part for part in parts if part), MAX_DESCRIPTION) or EMPTY_SNS_MESSAGE


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return _replace_lone_surrogates(value).strip()


def _replace_lone_surrogates(text: str) -> str:
    # "\ud800" escapes in JSON cannot be stored in DynamoDB; pairs are rejoined.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
